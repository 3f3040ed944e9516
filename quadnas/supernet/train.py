"""Supernet training on `trainer.fit`: uniform single-path sampling or the sandwich rule, preemptible, resumable.

Checkpoints: at every epoch end, every `CheckpointPolicy` steps or minutes, and on SIGTERM or
SIGUSR1 (after which training stops with a line saying how to resume). Unfinished ones go to
`<out>.steps/step-<N>.pt`, the last `keep` kept; the finished supernet goes to `out` (weights
only) and the step folder is removed. `resume=True` continues from the newest one, mid-epoch
if need be, and ends with bit-identical weights to an uninterrupted run on the CPU (same
machine, thread count and rank count).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from quadnas.data.loader import default_workers
from quadnas.errors import QuadnasError
from quadnas.progress import Progress, Silent
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import (
    DatasetInfo,
    check_data,
    check_space,
    check_writable,
    checkpoint_state,
    meta_of,
    read_checkpoint,
    save_checkpoint,
    supernet_from_state,
)
from quadnas.supernet.optim import param_groups, warmup_cosine
from quadnas.supernet.paths import PathSampler, Sandwich, Uniform
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.runtime import StopRequest, is_main_process, numerics, process_group, rank_device, world_rank
from quadnas.supernet.supernet import Supernet
from quadnas.supernet.trainer import (
    CheckpointPolicy,
    EpochStats,
    Loop,
    Precision,
    Trainer,
    fit,
    steps_for,
    steps_per_epoch,
    training_precision,
)

if TYPE_CHECKING:
    from quadnas.data import Dataset

__all__ = [
    "CheckpointPolicy",
    "EpochStats",
    "SupernetTrainer",
    "TrainConfig",
    "is_main_process",
    "param_groups",
    "steps_for",
    "steps_per_epoch",
    "train_supernet",
    "warmup_cosine",
    "world_rank",
]
DEFAULT_RESUME_HINT = "run the same command again with --resume"


def path_sampler(space: SearchSpace, config: TrainConfig) -> PathSampler:
    """The package's rule: one uniform path per step, or the sandwich rule (labels only) with `config.sandwich`."""
    return Sandwich(space, config.sandwich_random) if config.sandwich else Uniform(space)


class SupernetTrainer(Trainer):
    """A `Trainer` of a freshly initialised supernet of `space` (torch seeded with `config.seed`, so every rank
    starts alike), paths from `sampler` (default: `path_sampler(space, config)`), `steps_per_epoch` x
    `config.epochs` steps of schedule."""

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int,
        config: TrainConfig,
        steps_per_epoch: int,
        sampler: PathSampler | None = None,
        precision: Precision = "fp32",
        adapt: Callable[[Supernet], None] | None = None,
        exempt: str | None = None,
    ):
        self.space, self.config, self.steps_per_epoch = space, config, steps_per_epoch
        torch.manual_seed(config.seed)
        model = Supernet(space, num_classes, config.memory_efficient, config.layer_scale_init, config.width).train()
        if adapt is not None:
            adapt(model)
        self.supernet = model
        total = config.epochs * steps_per_epoch
        super().__init__(
            model,
            sampler or path_sampler(space, config),
            lr=config.lr,
            weight_decay=config.weight_decay,
            warmup_steps=round(config.warmup_epochs * steps_per_epoch),
            total_steps=total,
            label_smoothing=config.label_smoothing,
            seed=config.seed,
            precision=precision,
            exempt=exempt,
        )

    def archs(self) -> list[Any]:
        """The paths of the next step, drawn from the shared arch RNG."""
        return self.paths.paths(self.arch_rng)


def step_dir(out: Path) -> Path:
    """Where the unfinished checkpoints of `out` go."""
    return out.with_name(out.name + ".steps")


def train_supernet(
    space: SearchSpace,
    dataset: Dataset,
    config: TrainConfig,
    checkpoint_path: str | Path,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    device: str | torch.device = "cpu",
    *,
    workers: int | None = None,
    precision: Precision = "fp32",
    deterministic: bool = False,
    policy: CheckpointPolicy | None = None,
    keep: int = 3,
    resume_hint: str = DEFAULT_RESUME_HINT,
) -> Supernet:
    """Train a supernet of `space` on `dataset`, checkpointing as the module doc says.

    An existing checkpoint is refused unless `resume`; with `resume` training continues from
    the newest one (a finished one is simply loaded). `on_epoch` is called on rank 0 after each
    epoch's checkpoint is written; `progress` (rank 0) reports the steps. `device` ('cpu',
    'cuda', 'cuda:N'; under torchrun CUDA ranks take `cuda:LOCAL_RANK`) holds the model;
    `workers` decode data (default: none for in-memory data, else up to 8). The checkpoint
    loads anywhere. Returns the model in eval mode, on the device.
    """
    device = rank_device(device)
    precision, precision_note = training_precision(precision, device)
    path = check_writable(checkpoint_path)  # before any step is spent
    _check_data(space, dataset, config)
    saved = _saved_state(path, resume, space, dataset, config)
    if saved is not None and meta_of(path, saved).finished:
        supernet, _ = supernet_from_state(path, saved, space)
        return supernet.to(device)
    per_epoch = steps_per_epoch(len(dataset.train), min(config.batch_size, len(dataset.train)))
    augment = dataset.augment(config.augment)
    loop = Loop(
        dataset.train,
        config.batch_size,
        config.epochs * per_epoch,
        seed=config.seed,
        augment=augment,
        workers=default_workers(dataset.train) if workers is None else workers,
        device=device,
    )
    info = DatasetInfo.of(dataset)
    with ExitStack() as stack:
        gpus = [device.index or 0] if device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=gpus))  # the caller's RNG state is left as it was
        stack.enter_context(numerics(deterministic))
        stack.enter_context(process_group(device))
        stop = stack.enter_context(StopRequest().catching())
        trainer = SupernetTrainer(space, dataset.num_classes, config, per_epoch, precision=precision)
        trainer.model.to(device)  # in place: the optimizer keeps the same parameters
        if device.type == "cuda":
            trainer.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        totals = None
        if saved is not None:
            trainer.load_state_dict(saved["model"], saved["training"])
            totals = saved["training"].get("epoch_totals")
        rank = world_rank()[0]
        reporter = (progress or Progress()) if rank == 0 else Silent()
        if precision_note:
            reporter.note(precision_note)
        what = f"training supernet ({config.epochs} epochs of {per_epoch} steps)"
        task = stack.enter_context(reporter.task(what, loop.total_steps, trainer.steps_done))

        supernet = trainer.supernet

        def save(trainer: Trainer, loop_state: dict[str, Any], why: str) -> None:
            if rank != 0:
                return
            finished = trainer.steps_done >= loop.total_steps
            epoch = trainer.steps_done // per_epoch
            if finished:
                state = checkpoint_state(supernet, info, config.model_dump(), epoch, {}, trainer.steps_done)
                save_checkpoint(path, state)
                shutil.rmtree(step_dir(path), ignore_errors=True)
                return
            training = {**trainer.state_dict(), **loop_state}
            state = checkpoint_state(supernet, info, config.model_dump(), epoch, training, trainer.steps_done)
            folder = step_dir(path)
            save_checkpoint(folder / f"step-{trainer.steps_done:09d}.pt", state)
            for old in sorted(folder.glob("step-*.pt"))[:-keep]:
                old.unlink(missing_ok=True)

        fit(
            trainer,
            loop,
            task=task,
            epochs=config.epochs,
            totals=totals,
            save=save,
            policy=policy,
            stop=stop,
            on_epoch=on_epoch,
            resume_hint=resume_hint,
        )
    return supernet.eval()


def _check_data(space: SearchSpace, dataset: Dataset, config: TrainConfig) -> None:
    space.check_resolution(config.resolution)
    if dataset.resolution != config.resolution:
        raise QuadnasError(
            f"dataset '{dataset.name}' is at resolution {dataset.resolution} but training is set to "
            f"{config.resolution}: load the data with resolution={config.resolution}"
        )
    _, world = world_rank()
    global_batch = min(config.batch_size, len(dataset.train))
    if global_batch < world:
        raise QuadnasError(
            f"a global batch of {global_batch} images cannot be split over {world} processes: "
            f"use --batch-size {world} or more, or fewer processes"
        )


def resume_candidates(path: Path) -> list[Path]:
    """The checkpoints a resume of `path` may start from, newest first: the finished file, then step files."""
    steps = sorted(step_dir(path).glob("step-*.pt"), reverse=True) if step_dir(path).is_dir() else []
    return ([path] if path.exists() else []) + steps


def _saved_state(
    path: Path, resume: bool, space: SearchSpace, dataset: Dataset, config: TrainConfig
) -> dict[str, Any] | None:
    """The checkpoint to continue from, or None to start fresh; refuses to overwrite work without `resume`."""
    candidates = resume_candidates(path)
    if not candidates:
        return None
    if not resume:
        raise QuadnasError(f"checkpoint {candidates[0]} already exists: pass --resume to continue it, or another --out")
    chosen = candidates[0]
    saved = read_checkpoint(chosen)
    meta = meta_of(chosen, saved)
    check_space(meta, space)
    check_data(meta, dataset, "pass the same --data and --resolution, or another --out")
    old = TrainConfig.model_validate(meta.config)
    changed = [k for k, v in config.model_dump().items() if getattr(old, k) != v]
    if changed:
        was = ", ".join(f"{k}={getattr(old, k)}" for k in changed)
        raise QuadnasError(
            f"checkpoint {chosen} was trained with different settings ({was}): "
            f"resume with the same options, or pass another --out"
        )
    return saved
