#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (about 8 minutes on an H100/H200):
# the CUDA backend's tests, a measured torch-eager latency table of the default
# space with its validation against a FLOPs baseline, and bench_blocks_gpu.py.
# Results go to $OUT (default ./gpu-results). Usage: OUT=dir bash scripts/gpu_checks.sh
set -uo pipefail
OUT=$(realpath -m "${OUT:-gpu-results}")
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())" || exit 2
python3 -m pytest -q -p no:cacheprovider tests/test_backends.py 2>&1 | tail -3
gpu=$(python3 -c "import re, torch; print(re.sub('[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
table="$OUT/$gpu-torch-eager.csv"
timeout 240 python3 -m quadnas profile --backend torch --target cuda --out "$table" 2>&1 | tail -4
timeout 120 python3 scripts/bench_predictor.py --tables "$table" --n 20 \
    --out "$OUT/bench_predictor_gpu.json" --png "$OUT/bench_predictor_gpu.png" 2>&1 | tail -2
cd scripts && timeout "${BENCH_TIMEOUT:-360}" python3 bench_blocks_gpu.py --deadline-min "${COMPILE_DEADLINE_MIN:-3}" \
    --out "$OUT/bench_blocks_gpu.json" --png "$OUT/bench_blocks_gpu.png" 2>&1 | tee "$OUT/bench_blocks_gpu.log" | tail -30
