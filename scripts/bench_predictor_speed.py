"""Predictor throughput: archs per second that `LatencyPredictor.predict_many` prices.

For each shipped device table on the default space: `--n` random archs, priced from
`Arch` objects and from a choice-index array (what a vectorised sampler would pass);
the median of `--repeats` timed calls. JSON out.

    python scripts/bench_predictor_speed.py [--n 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from quadnas.latency.devices import load_device_table
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import SearchSpace


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="archs per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", nargs="+", default=["cpu", "vpu", "gpu"])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_predictor_speed.json"))
    args = parser.parse_args(argv)
    space = SearchSpace.load("quadranet-t")
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(args.n)]
    index = np.random.default_rng(0).integers(0, len(space.choices), size=(args.n, space.num_blocks))
    results = {}
    for device in args.devices:
        predictor = LatencyPredictor(load_device_table(device), space)
        results[device] = {
            "archs_per_s_from_arch_objects": args.n
            / median_seconds(lambda p=predictor: p.predict_many(archs), args.repeats),
            "archs_per_s_from_index_array": args.n
            / median_seconds(lambda p=predictor: p.predict_many(index), args.repeats),
        }
        print(device, json.dumps({k: round(v) for k, v in results[device].items()}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"n": args.n, "repeats": args.repeats, "space": space.name, "devices": results}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
