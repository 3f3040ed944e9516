"""`quadnas train`: train a weight-shared supernet, then show what its subnets inherit.

Several processes: `torchrun --nproc_per_node 2 -m quadnas train ...` (gloo on the CPU; NCCL with
`--train-device cuda`, one GPU per process). SIGTERM or SIGUSR1 writes a checkpoint and stops.
"""

from __future__ import annotations

import argparse
import random
from typing import TYPE_CHECKING

from pydantic import ValidationError

from quadnas.cli.common import console, err_console, positive_int
from quadnas.cli.progress import progress_for
from quadnas.errors import Invalid, QuadnasError
from quadnas.supernet import TrainConfig

if TYPE_CHECKING:
    from quadnas.supernet import EpochStats


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train a weight-shared supernet",
        description="Train a supernet (uniform single-path sampling, or --sandwich); checkpoints every epoch.",
    )
    p.add_argument("--space", default=None, help="search space name or YAML path (default quadranet-t)")
    p.add_argument(
        "--data",
        default="mnist5k",
        help="mnist5k, mnist5k-clutter, digits, an image folder, a .npz or a CIFAR-10 folder (default mnist5k)",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=defaults.resolution,
        help=f"training resolution, a multiple of the space's stride (default {defaults.resolution})",
    )
    p.add_argument("--epochs", type=positive_int, default=defaults.epochs, help=f"(default {defaults.epochs})")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=defaults.batch_size,
        help=f"global batch size (default {defaults.batch_size})",
    )
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"peak AdamW learning rate (default {defaults.lr})")
    p.add_argument("--seed", type=int, default=defaults.seed, help=f"(default {defaults.seed})")
    p.add_argument(
        "--sandwich",
        action="store_true",
        help="train largest + smallest + random paths per step instead of one random path",
    )
    p.add_argument(
        "--label-smoothing", type=float, default=defaults.label_smoothing, help=f"(default {defaults.label_smoothing})"
    )
    p.add_argument(
        "--no-memory-efficient",
        action="store_true",
        help="keep both quadratic factors for backward (faster, more memory)",
    )
    p.add_argument(
        "--augment",
        choices=("auto", "none", "crop", "crop-flip"),
        default=defaults.augment,
        help="training views: pad-and-crop (random-resized crop above 32 px) with or without a left-right mirror; "
        "auto: crop-flip, without the flip on the bundled digit sets (default auto)",
    )
    p.add_argument(
        "--val-images",
        type=positive_int,
        help="score a fixed, seeded, class-stratified subset of N validation images (default: all)",
    )
    p.add_argument("--workers", type=int, help="data loader workers (default: 0 for in-memory data, else up to 8)")
    p.add_argument("--amp", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast precision (default fp32)")
    p.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU algorithms (slower); default: cudnn.benchmark. The CPU is deterministic either way",
    )
    p.add_argument("--train-device", default="cpu", help="torch device: cpu (default), cuda or cuda:N")
    p.add_argument("--out", help="checkpoint path (default runs/supernets/<space>-<fp>-<data>-<fp>.pt)")
    p.add_argument(
        "--resume", action="store_true", help="continue the newest checkpoint of --out (mid-epoch if it stopped there)"
    )
    p.add_argument("--checkpoint-steps", type=positive_int, help="also write a checkpoint every N steps")
    p.add_argument("--checkpoint-minutes", type=float, help="also write a checkpoint every M minutes")
    p.add_argument(
        "--keep-checkpoints", type=positive_int, default=3, help="unfinished checkpoints kept (default 3, the newest)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from quadnas.accelerator import torch_device
    from quadnas.data import load_dataset
    from quadnas.space import SearchSpace
    from quadnas.supernet import (
        CheckpointPolicy,
        Evaluator,
        check_writable,
        default_checkpoint_path,
        is_main_process,
        train_supernet,
    )

    space = SearchSpace.load(args.space)
    space.check_resolution(args.resolution)
    torch_device(args.train_device)  # before the data loads
    if args.workers is not None and args.workers < 0:
        raise QuadnasError(f"--workers {args.workers} is negative: give 0 (load in this process) or more")
    if args.checkpoint_minutes is not None and args.checkpoint_minutes <= 0:
        raise QuadnasError(f"--checkpoint-minutes {args.checkpoint_minutes} is not positive: give e.g. 30")
    config = train_config(args)
    if args.out:
        check_writable(args.out)  # before the data loads
    main = is_main_process()
    progress = progress_for(err_console) if main else None
    dataset = load_dataset(
        args.data,
        resolution=config.resolution,
        val_fraction=config.val_fraction,
        channels=space.config.in_channels,
        progress=progress,
        val_images=args.val_images,
    )
    out = args.out or default_checkpoint_path(space, dataset)
    supernet = train_supernet(
        space,
        dataset,
        config,
        out,
        resume=args.resume,
        progress=progress,
        on_epoch=print_epoch if main else None,
        device=args.train_device,
        workers=args.workers,
        precision=args.amp,
        deterministic=args.deterministic,
        policy=CheckpointPolicy(args.checkpoint_steps, args.checkpoint_minutes),
        keep=args.keep_checkpoints,
    )
    if not main:
        return 0
    evaluator = Evaluator(supernet, dataset)
    title = f"{space.name} on {dataset.name}: {len(dataset.val)} validation images"
    view = Table("subnet", "val accuracy", title=title)
    view.add_column("arch", overflow="fold")
    subnets = (
        ("largest", space.largest()),
        ("smallest", space.smallest()),
        ("random", space.sample(random.Random(config.seed))),
    )
    for label, arch in subnets:
        view.add_row(label, f"{evaluator.accuracy(arch):.2%}", str(arch))
    console.print(view)
    console.print(f"checkpoint: {out}", highlight=False, soft_wrap=True)
    return 0


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The options as a `TrainConfig`; an out-of-range value is a one-line error naming the flag."""
    try:
        return TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            sandwich=args.sandwich,
            label_smoothing=args.label_smoothing,
            memory_efficient=not args.no_memory_efficient,
            resolution=args.resolution,
            augment=args.augment,
        )
    except ValidationError as e:
        bad = Invalid.of(e)
        raise QuadnasError(f"--{bad.loc[0].replace('_', '-')} {bad.value}: {bad.message}") from None


def print_epoch(stats: EpochStats) -> None:
    console.print(
        f"epoch {stats.epoch}/{stats.epochs}: train loss {stats.loss:.3f}, train acc {stats.accuracy:.1%}, "
        f"lr {stats.lr:.2e}, {stats.seconds:.0f} s",
        highlight=False,
    )
