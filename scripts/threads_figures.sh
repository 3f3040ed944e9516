#!/usr/bin/env bash
# The figures of docs/benchmarks.md, "Several threads": run on a quiet machine (load average under ~0.5),
# after `python scripts/bench_threads.py prepare` (exports only; any time). Writes docs/figures/threads/, or the
# folder $QUADNAS_BENCH_OUT names (e.g. docs/figures/threads_interleaved/).
set -euo pipefail
cd "$(dirname "$0")/.."
bench() { python scripts/bench_threads.py "$@"; }
uptime
bench diagnose                                              # runtime settings: models alone vs interleaved
bench rows onnxruntime:fp32:2 openvino:fp32:2              # two profiles each, ops 6 at a time and all at once
bench tables ort-fp32-2t-new ort-fp32-2t-old                # 2 threads, onnxruntime FP32, this method and the old
bench tables ov-fp32-2t-new ov-fp32-2t-old                  # OpenVINO FP32
bench tables ort-fp32-1t-new ort-fp32-1t-shipped ov-fp32-1t-new ov-fp32-1t-shipped   # 1 thread loses nothing?
bench tables ort-int8-2t-new ov-int8-2t-new                 # INT8
uptime
bench report
