"""Another table's predictions against the networks a `bench_predictor.py` run measured.

For every JSON given: the table's prediction of each measured arch, over the measured
latency (median and range of the ratio), Kendall tau and MAPE. E.g. how the shipped,
estimated `gpu` table compares with eager latencies measured on a real GPU:

    python scripts/compare_tables.py --table gpu docs/figures/gpu/bench_predictor_gpu_run*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from quadnas.errors import QuadnasError
from quadnas.latency.devices import load_device_table
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import SearchSpace


def compare(table: str, measured_json: Path, space: SearchSpace) -> dict[str, float]:
    run = json.loads(measured_json.read_text())[0]
    predictor = LatencyPredictor(load_device_table(table), space)
    measured = np.array(run["measured_ms"])
    predicted = np.array([predictor.predict(space.parse(a)) for a in run["archs"]])
    ratio = predicted / measured
    return {"ratio_median": float(np.median(ratio)), "ratio_min": float(ratio.min()),
            "ratio_max": float(ratio.max()), "kendall_tau": float(stats.kendalltau(measured, predicted).statistic),
            "mape_pct": float(np.mean(np.abs(ratio - 1)) * 100), "n": len(measured)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="the table whose predictions are compared (name or path)")
    parser.add_argument("--space", default="quadranet-t", help="the space of the measured archs")
    parser.add_argument("runs", nargs="+", type=Path, help="bench_predictor.py JSON outputs")
    args = parser.parse_args(argv)
    try:
        space = SearchSpace.load(args.space)
        for path in args.runs:
            print(path, json.dumps({k: round(v, 3) for k, v in compare(args.table, path, space).items()}))
    except QuadnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
