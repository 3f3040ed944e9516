"""Accuracy of `quadnas train` under bf16 autocast and on two torchrun ranks, beside one fp32 process.

For each seed, trains the same supernet three ways with the CLI: one fp32 process, one process
with `--amp bf16`, and two gloo ranks through torchrun (same global batch); then scores the
largest and the smallest subnet of each checkpoint on the validation split. The question is
whether bf16 and two ranks stay within the fp32 seeds' spread. Accuracies, not timings: the
machine's load does not change them.

    python scripts/bench_precision_ranks.py --out docs/figures/bench_precision_ranks.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quadnas.data import load_dataset
from quadnas.latency.host import Host
from quadnas.space import SearchSpace
from quadnas.supernet import Evaluator
from quadnas.supernet.checkpoint import load_checkpoint

WAYS = {
    "fp32": [sys.executable, "-m", "quadnas"],
    "bf16": [sys.executable, "-m", "quadnas"],
    "2 ranks": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "quadnas"],
}


def train(way: str, args: argparse.Namespace, seed: int, out: Path) -> float:
    command = [
        *WAYS[way],
        "-q",
        "train",
        "--space",
        args.space,
        "--data",
        args.data,
        "--resolution",
        str(args.resolution),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(seed),
        "--out",
        str(out),
        *(["--amp", "bf16"] if way == "bf16" else []),
    ]
    began = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if way == "2 ranks" else None
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="tiny")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_precision_ranks.json"))
    args = parser.parse_args()

    space = SearchSpace.load(args.space)
    data = load_dataset(args.data, resolution=args.resolution, channels=space.config.in_channels)
    runs = []
    with tempfile.TemporaryDirectory(prefix="quadnas-precision-ranks-") as tmp:
        for seed in args.seeds:
            for way in WAYS:
                out = Path(tmp) / f"{way.replace(' ', '-')}-{seed}.pt"
                seconds = train(way, args, seed, out)
                supernet, _ = load_checkpoint(out, space)
                evaluator = Evaluator(supernet, data)
                row = {
                    "way": way,
                    "seed": seed,
                    "largest": evaluator.accuracy(space.largest()),
                    "smallest": evaluator.accuracy(space.smallest()),
                    "seconds": round(seconds, 1),
                }
                runs.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for way in WAYS:
        for subnet in ("largest", "smallest"):
            values = [r[subnet] for r in runs if r["way"] == way]
            summary[f"{way} {subnet}"] = {
                "mean": statistics.mean(values),
                "spread": max(values) - min(values),
                "values": values,
            }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "space": args.space,
                "data": args.data,
                "resolution": args.resolution,
                "epochs": args.epochs,
                "host": Host.current().describe(),
                "load_average": os.getloadavg(),
                "runs": runs,
                "summary": summary,
            },
            indent=2,
        )
    )
    for key, value in summary.items():
        print(f"{key}: mean {value['mean']:.3f}, spread {value['spread']:.3f}")


if __name__ == "__main__":
    main()
