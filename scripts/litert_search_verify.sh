#!/usr/bin/env bash
# A --device search on this host's LiteRT table, its winner exported to .tflite and timed here against the
# table (--verify-latency: exit 1 when over the budget by more than the table's calibration error). Latency
# work only: a 1-epoch proxy supernet ranks the archs, and the winner is exported with random weights
# (--init random), which time as trained ones do.
# Needs the litert extra. Writes runs/litert-search/ (the study) and runs/litert-figures/verify.json.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=runs/litert-figures
mkdir -p "$OUT"
python -m quadnas search --device amd-epyc-litert-1t --budget 60ms --train-epochs 1 --trials 40 \
  --runs-dir runs/litert-search --json \
  > "$OUT/search.json"
BEST=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["files"]["best.yaml"])' "$OUT/search.json")
python -c 'import os, json; print(json.dumps({"loadavg_before_verify": os.getloadavg()}))' > "$OUT/load_verify.json"
python -m quadnas export "$BEST" --format litert --out "$OUT/search-winner.tflite" --init random \
  --verify-latency --json > "$OUT/verify.json"
