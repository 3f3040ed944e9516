"""Supernet training throughput and subnet size: writes one JSON file.

Training images/s on each dataset (default space, resolution 32, uniform single-path
steps with the real `SupernetTrainer`), timed over a fixed number of steps after a
warm-up; and parameters and MACs (FLOPs / 2, counted by FlopCounterMode over conv
and matmul ops) of the largest and the smallest subnet at the space's deployment
resolution.

    .venv/bin/python scripts/bench_train.py            # writes docs/figures/bench_train.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from itertools import cycle
from pathlib import Path

import torch

from quadnas.data import load_dataset
from quadnas.model_card import model_stats
from quadnas.nn.net import QuadraNet
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.train import SupernetTrainer, TrainConfig


def training_throughput(
    space: SearchSpace, source: str, batch: int, warmup: int, steps: int, memory_efficient: bool
) -> dict:
    """Images per second over `steps` training steps after `warmup` untimed ones."""
    data = load_dataset(source, resolution=32, channels=space.config.in_channels)
    config = TrainConfig(batch_size=batch, resolution=32, memory_efficient=memory_efficient)
    x, y = data.train.tensors
    trainer = SupernetTrainer(space, data.num_classes, config, steps_per_epoch=max(1, len(y) // batch))
    batches = cycle(list(trainer.epoch_batches(len(y))))
    for _ in range(warmup):
        index = next(batches)
        trainer.step(x[index], y[index], len(index))
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        index = next(batches)
        trainer.step(x[index], y[index], len(index))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "images_per_s": round(steps * batch / wall, 2),
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
    parser.add_argument("--no-memory-efficient", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = SearchSpace.load(args.space)
    memory_efficient = not args.no_memory_efficient
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "space": {"name": space.name, "fingerprint": space.fingerprint()},
        "training": {
            "resolution": 32,
            "sampling": "uniform single path",
            "memory_efficient": memory_efficient,
            "datasets": {
                source: training_throughput(space, source, args.batch, args.warmup, args.steps, memory_efficient)
                for source in args.data
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
