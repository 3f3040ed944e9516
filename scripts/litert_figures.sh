#!/usr/bin/env bash
# The LiteRT figures of docs/benchmarks.md, in one go, on this host (1 thread, quadranet-t at 224 px):
#  1. a LiteRT table of this host (`quadnas profile --backend litert`, shipped as latency_tables/amd-epyc-litert-1t.csv);
#  2. that table validated on 20 held-out archs (`quadnas validate`);
#  3. LiteRT, onnxruntime and torch eager timing the same held-out archs side by side (scripts/bench_runtimes.py;
#     6 archs on the loaded session machine, --n 20 on a quiet one).
# Needs the litert extra: pip install -c constraints.txt -e ".[litert]". Writes under runs/litert-figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/litert-figures
mkdir -p "$OUT"
python -c 'import os, json; print(json.dumps({"loadavg_before": os.getloadavg()}))' > "$OUT/load_profile.json"
python -m quadnas profile --backend litert --threads 1 --out latency_tables/amd-epyc-litert-1t.csv --json \
  > "$OUT/profile.json"
python -m quadnas validate --table latency_tables/amd-epyc-litert-1t.csv --n 20 --json "$OUT/validate.json"
python scripts/bench_runtimes.py --n 6 --out "$OUT/runtimes.json"
