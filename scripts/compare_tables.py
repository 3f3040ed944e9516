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

from quadnas.errors import QuadnasError
from quadnas.latency.devices import load_device_table
from quadnas.latency.measure._validate import compare
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import SearchSpace


def measured_runs(path: Path) -> list[dict]:
    """The measured tables of a bench_predictor.py JSON (a list of runs with archs and measured_ms)."""
    try:
        runs = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise QuadnasError(f"cannot read {path} ({e}): give a JSON that bench_predictor.py wrote") from None
    if not isinstance(runs, list) or not all(
        isinstance(r, dict) and {"archs", "measured_ms"} <= r.keys() for r in runs
    ):
        raise QuadnasError(f"{path} is not a bench_predictor.py JSON (a list of runs with archs and measured_ms)")
    return runs


def compare_run(predictor: LatencyPredictor, run: dict) -> dict[str, float]:
    """The table's predictions of one run's archs against their measured latency."""
    measured = np.array(run["measured_ms"])
    predicted = predictor.predict_many([predictor.space.parse(a) for a in run["archs"]])
    ratio = predicted / measured
    return {
        "ratio_median": float(np.median(ratio)),
        "ratio_min": float(ratio.min()),
        "ratio_max": float(ratio.max()),
        "n": len(measured),
        **compare(measured, predicted),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", required=True, help="the table whose predictions are compared (name or path)")
    parser.add_argument("--space", default="quadranet-t", help="the space of the measured archs")
    parser.add_argument("runs", nargs="+", type=Path, help="bench_predictor.py JSON outputs")
    args = parser.parse_args(argv)
    try:
        predictor = LatencyPredictor(load_device_table(args.table), SearchSpace.load(args.space))
        for path in args.runs:
            for run in measured_runs(path):
                figures = compare_run(predictor, run)
                print(path, run.get("table", ""), json.dumps({k: round(v, 3) for k, v in figures.items()}))
    except QuadnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
