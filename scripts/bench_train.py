"""Supernet training throughput and subnet size: writes one JSON file.

Training images/s on each dataset (default space, resolution 32, uniform single-path
steps with the real `SupernetTrainer`), timed over a fixed number of steps after a
warm-up, for the full-width recipe (`quadnas train`), the search's quarter-width proxy
(`TrainConfig.for_search`) and its half-width option (`--train-width 0.5`), with the seconds
to score one arch on the validation split; and parameters and MACs (FLOPs / 2, counted by
FlopCounterMode over conv and matmul ops) of the largest and the smallest subnet at the
space's deployment resolution.

With --compare-plain every recipe runs twice, with the fused quadratic depthwise conv
(`quadnas.nn.fused`, the default) and with the three plain convs (`QUADNAS_FUSED=0`).

    .venv/bin/python scripts/bench_train.py            # writes docs/figures/bench_train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from itertools import cycle
from pathlib import Path

import torch

from quadnas.bench.baselines import fused_op
from quadnas.data import load_dataset
from quadnas.latency.host import Host
from quadnas.nn import fused
from quadnas.nn.net import QuadraNet
from quadnas.nn.stats import model_stats
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.evaluate import Evaluator
from quadnas.supernet.train import SupernetTrainer, TrainConfig


def training_throughput(space: SearchSpace, source: str, config: TrainConfig, warmup: int, steps: int) -> dict:
    """Images per second over `steps` training steps after `warmup` untimed ones, and seconds to score
    one arch on the validation split (mean over 5 random archs, after one untimed)."""
    batch = config.batch_size
    data = load_dataset(source, resolution=32, channels=space.config.in_channels)
    x, y = data.train.tensors  # decoded once: this times the training step, not the loader (bench_data.py does)
    trainer = SupernetTrainer(space, data.num_classes, config, steps_per_epoch=max(1, len(y) // batch))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(config.seed))
    batches = cycle(order[: len(y) // batch * batch].split(batch))
    for _ in range(warmup):
        index = next(batches)
        trainer.step(x[index], y[index], len(index))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        index = next(batches)
        trainer.step(x[index], y[index], len(index))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    evaluator = Evaluator(trainer.model.eval(), data)
    archs = [space.sample(random.Random(i)) for i in range(6)]
    evaluator.accuracy(archs[0])
    began = time.perf_counter()
    for arch in archs[1:]:
        evaluator.accuracy(arch)
    return {
        "width": config.width,
        "memory_efficient": config.memory_efficient,
        "images_per_s": round(steps * batch / wall, 2),
        "eval_seconds_per_arch": round((time.perf_counter() - began) / 5, 4),
        "val_images": len(data.val),
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "steps": steps,
        "warmup_steps": warmup,
        "batch": batch,
        "train_images": len(y),
    }


def subnet_size(space: SearchSpace, arch: Arch) -> dict:
    """Parameters and MACs of `arch` as a standalone network at the deployment resolution."""
    resolution = space.config.resolution
    params, macs = model_stats(QuadraNet(space, arch), (1, space.config.in_channels, resolution, resolution))
    return {"arch": str(arch), "resolution": resolution, "params": params, "macs": macs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_train.json"))
    parser.add_argument("--space", default=None, help="search space (default quadranet-t)")
    parser.add_argument("--data", nargs="+", default=["digits", "mnist5k"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--no-memory-efficient", action="store_true", help="for the full-width recipe")
    parser.add_argument("--compare-plain", action="store_true", help="also run each recipe with the fused op off")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = SearchSpace.load(args.space)
    recipes = {
        "full width (quadnas train)": TrainConfig(batch_size=args.batch, memory_efficient=not args.no_memory_efficient),
        "search proxy (quadnas search)": TrainConfig.for_search("mnist5k", batch_size=args.batch),
        "half-width search proxy (quadnas search --train-width 0.5)": TrainConfig.for_search(
            "mnist5k", batch_size=args.batch, width=0.5
        ),
    }
    modes = [True, False] if args.compare_plain else [True]

    def run(config: TrainConfig, source: str, on: bool) -> dict:
        with fused_op(on):
            return training_throughput(space, source, config, args.warmup, args.steps)

    result = {
        "machine": {
            "platform": platform.platform(),
            "host": Host.current().model_dump(),
            "host_fingerprint": Host.current().fingerprint,
            "load_average_at_start": os.getloadavg(),
            "torch": torch.__version__,
            "threads": args.threads,
            "fused_available": fused.is_available(),
        },
        "space": {"name": space.name, "fingerprint": space.fingerprint()},
        "training": {
            "resolution": 32,
            "sampling": "uniform single path",
            "recipes": {
                name + ("" if on else " [plain convs]"): {source: run(config, source, on) for source in args.data}
                for name, config in recipes.items()
                for on in modes
            },
        },
        "subnets": {"largest": subnet_size(space, space.largest()), "smallest": subnet_size(space, space.smallest())},
    }
    result["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
