#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go (4-7 minutes on an H200):
# 1. the CUDA tests (latency backend, supernet training on the GPU);
# 2. a torch-eager latency table of the default space measured on this GPU, validated on
#    20 random networks beside a FLOPs baseline; the shipped table of this GPU, if any,
#    validated again on this machine;
# 3. supernet ranking on the GPU: longer stand-alone training and three seeds per arch;
# 4. bench_blocks_gpu.py (eager, and compiled for the variants in $COMPILE_VARIANTS).
# Results go to $OUT (default ./gpu-results). Usage: OUT=dir bash scripts/gpu_checks.sh
set -uo pipefail
OUT=$(realpath -m "${OUT:-gpu-results}")
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())" || exit 2
python3 -m pytest -q -p no:cacheprovider tests/test_backends.py tests/test_train.py -k "cuda or backend" 2>&1 | tail -1

gpu=$(python3 -c "import re, torch; print(re.sub('[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
table="$OUT/$gpu-torch-eager.csv"
timeout 120 python3 -m quadnas profile --backend torch --target cuda --out "$table" 2>&1 | tail -3
timeout 90 python3 scripts/bench_predictor.py --tables "$table" --n 20 \
    --out "$OUT/bench_predictor_gpu.json" --png "$OUT/bench_predictor_gpu.png" 2>&1 | tail -1
if [ -f "latency_tables/$gpu-torch-eager.csv" ]; then
    timeout 60 python3 -m quadnas validate --table "latency_tables/$gpu-torch-eager.csv" --n 20 \
        --json "$OUT/validate_shipped.json" 2>&1 | tail -4
fi

timeout "${RC_TIMEOUT:-200}" python3 scripts/rank_correlation.py --train-device cuda --workers 12 \
    --standalone-epochs 8 --supernet-epochs 16 --repeat-seed 1 2 --methods uniform,fairnas,kernel-transform,long \
    --out "$OUT/rank_correlation_gpu.json" --plot "$OUT/rank_correlation_gpu.png" > "$OUT/rank_correlation_gpu.log" 2>&1
tail -8 "$OUT/rank_correlation_gpu.log"

cd scripts && timeout "${BENCH_TIMEOUT:-150}" python3 bench_blocks_gpu.py \
    --compile-variants "${COMPILE_VARIANTS:-hornet,quadranet-me}" --deadline-min "${COMPILE_DEADLINE_MIN:-1.2}" \
    --out "$OUT/bench_blocks_gpu.json" --png "$OUT/bench_blocks_gpu.png" > "$OUT/bench_blocks_gpu.log" 2>&1
tail -9 "$OUT/bench_blocks_gpu.log"
