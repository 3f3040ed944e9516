"""Supernet training: uniform single-path sampling (or the sandwich rule), resumable, deterministic.

Each step samples one arch of the space with a seeded `random.Random` and trains
that path; with `sandwich` the largest, the smallest and `sandwich_random` random
paths share one update (gradients accumulated). AdamW with a per-step linear
warm-up then cosine schedule. A checkpoint is written atomically after every epoch;
`resume=True` continues from the last finished epoch and ends with bit-identical
weights to an uninterrupted run (same machine and thread count).

Data parallel: under `torchrun` (`WORLD_SIZE > 1`) every rank draws the same
permutation and the same archs from the same seeds and trains its shard of each
global batch. Gradients are summed with one `all_reduce` per step over the
parameters the shared arch used, instead of DDP: DDP would need
`find_unused_parameters=True` (a graph walk per step, with a used set that changes
every step), whereas the manual reduction is simple, deterministic and keeps the
exact single-process semantics (unused parameters get no gradient, so AdamW leaves
them alone). Only rank 0 writes checkpoints and reports progress.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from quadnas.accelerator import torch_device
from quadnas.errors import QuadnasError
from quadnas.progress import Progress, ProgressEvent, Task
from quadnas.space import Arch, SearchSpace
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
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.supernet import Supernet

if TYPE_CHECKING:
    from quadnas.data import Dataset


@dataclass(frozen=True)
class EpochStats:
    """Training loss and top-1 accuracy of the sampled paths over one epoch (all ranks)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    lr: float
    seconds: float


def world_rank() -> tuple[int, int]:
    """`(rank, world_size)` from torchrun's environment (`(0, 1)` when run alone)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed): the process that writes and prints."""
    return world_rank()[0] == 0


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def param_groups(model: nn.Module, weight_decay: float, exempt: str | None = None) -> list[dict[str, Any]]:
    """SupernetTrainer's rule: decay weights and layer scales, not biases, norms or names containing `exempt`."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.ndim > 1 and not (exempt and exempt in name) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class SupernetTrainer:
    """Model, optimizer, schedule and RNGs of one training run; `step` trains one batch.

    Seeds torch's global RNG with `config.seed` for the initial weights, so every rank
    starts from the same supernet.
    """

    def __init__(self, space: SearchSpace, num_classes: int, config: TrainConfig, steps_per_epoch: int):
        self.space, self.config, self.steps_per_epoch = space, config, steps_per_epoch
        self.rank, self.world = world_rank()
        torch.manual_seed(config.seed)
        self.model = Supernet(
            space, num_classes, config.memory_efficient, config.layer_scale_init, config.width
        ).train()
        self.optimizer = torch.optim.AdamW(param_groups(self.model, config.weight_decay), lr=config.lr, fused=True)
        total = config.epochs * steps_per_epoch
        warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(warmup, total))
        self.arch_rng = random.Random(config.seed)
        self.data_rng = torch.Generator().manual_seed(config.seed)

    def archs(self) -> list[Arch]:
        """The paths of the next step, drawn from the shared arch RNG."""
        if not self.config.sandwich:
            return [self.space.sample(self.arch_rng)]
        randoms = [self.space.sample(self.arch_rng) for _ in range(self.config.sandwich_random)]
        return [self.space.largest(), self.space.smallest(), *randoms]

    def epoch_batches(self, n: int) -> Iterator[torch.Tensor]:
        """This rank's indices of each global batch of one shuffled epoch."""
        perm = torch.randperm(n, generator=self.data_rng)
        size = min(self.config.batch_size, n)
        for step in range(self.steps_per_epoch):
            yield perm[step * size : (step + 1) * size][self.rank :: self.world]

    def step(self, x: torch.Tensor, y: torch.Tensor, global_batch: int) -> tuple[float, float, int]:
        """One update on this rank's part of a global batch: `(loss sum, correct, samples)`.

        Loss and correct count are averaged over the step's paths.
        """
        archs = self.archs()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, correct, first = 0.0, 0, None
        for arch in archs:
            logits = self.model(x, arch)
            loss = self.path_loss(logits, y, first)
            first = logits.detach() if first is None else first
            (loss / (global_batch * len(archs))).backward()
            loss_sum += loss.item() / len(archs)
            correct += int((logits.argmax(1) == y).sum())
        self._reduce_gradients()
        self.optimizer.step()
        self.scheduler.step()
        return loss_sum, correct / len(archs), len(y)

    def path_loss(self, logits: torch.Tensor, y: torch.Tensor, first: torch.Tensor | None) -> torch.Tensor:
        """The summed loss of one path of a step; `first`: the detached logits of the step's first path
        (None for the first path itself), for methods that distil from it."""
        return F.cross_entropy(logits, y, reduction="sum", label_smoothing=self.config.label_smoothing)

    def _reduce_gradients(self) -> None:
        """Sum gradients over ranks; every rank ran the same arch, so the same parameters have one."""
        if self.world == 1:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "arch": self.arch_rng.getstate(),
                "data": self.data_rng.get_state(),
            },
        }

    def load_state_dict(self, model: dict[str, Any], training: dict[str, Any]) -> None:
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        rng = training["rng"]
        torch.set_rng_state(rng["torch"])
        self.arch_rng.setstate(rng["arch"])
        self.data_rng.set_state(rng["data"])


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full global batches per epoch (the remainder is dropped; reshuffled every epoch)."""
    return max(1, num_train // batch_size)


def steps_for(epochs: float, num_train: int, batch_size: int) -> int:
    """Steps of `epochs` (fractional allowed) passes of full batches; at least one."""
    return max(1, round(epochs * steps_per_epoch(num_train, batch_size)))


def train_supernet(
    space: SearchSpace,
    dataset: Dataset,
    config: TrainConfig,
    checkpoint_path: str | Path,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    device: str | torch.device = "cpu",
) -> Supernet:
    """Train a supernet of `space` on `dataset`, checkpointing to `checkpoint_path` every epoch.

    An existing checkpoint is refused unless `resume`; with `resume` training continues
    from its last finished epoch (a finished checkpoint is simply loaded). `on_epoch`
    is called on rank 0 after each epoch's checkpoint is written; `progress` (rank 0)
    reports every step. The last epoch's checkpoint keeps the weights only: optimizer and
    RNG states serve to resume unfinished training and are dropped once it is done.
    `device` ('cpu', 'cuda', 'cuda:N') holds the model and the data; the checkpoint loads
    anywhere. Returns the model in eval mode, on `device`.
    """
    device = torch_device(device)
    if device.type == "cuda" and world_rank()[1] > 1:
        raise QuadnasError(
            "several training processes run on the CPU only (gloo): train on one GPU without "
            "torchrun, or drop --train-device"
        )
    path = check_writable(checkpoint_path)  # before any epoch is spent
    _check_data(space, dataset, config)
    saved = _saved_state(path, resume, space, dataset, config)
    if saved is not None and int(saved["epoch"]) >= config.epochs:
        supernet, _ = supernet_from_state(path, saved, space)
        return supernet.to(device)
    x_train, y_train = (t.to(device) for t in dataset.train.tensors)
    steps = steps_per_epoch(len(y_train), config.batch_size)
    global_batch = min(config.batch_size, len(y_train))
    with ExitStack() as stack:
        gpus = [device.index or 0] if device.type == "cuda" else []
        stack.enter_context(torch.random.fork_rng(devices=gpus))  # the caller's RNG state is left as it was
        stack.enter_context(_deterministic())
        stack.enter_context(_process_group())
        trainer = SupernetTrainer(space, dataset.num_classes, config, steps)
        trainer.model.to(device)  # in place: the optimizer keeps the same parameters
        start = 0
        if saved is not None:
            trainer.load_state_dict(saved["model"], saved["training"])
            start = int(saved["epoch"])
        info = DatasetInfo.of(dataset)
        reporter = (progress or Progress()) if trainer.rank == 0 else _Silent()
        what = f"training supernet ({config.epochs} epochs of {steps} steps)"
        task = stack.enter_context(reporter.task(what, config.epochs * steps, start * steps))
        for epoch in range(start, config.epochs):
            stats = _train_epoch(trainer, x_train, y_train, global_batch, epoch, task)
            if trainer.rank == 0:
                finished = epoch + 1 == config.epochs
                training = {} if finished else trainer.state_dict()
                save_checkpoint(path, checkpoint_state(trainer.model, info, config.model_dump(), epoch + 1, training))
                if on_epoch is not None:
                    on_epoch(stats)
    return trainer.model.eval()


def _train_epoch(
    trainer: SupernetTrainer, x: torch.Tensor, y: torch.Tensor, global_batch: int, epoch: int, task: Task
) -> EpochStats:
    """One pass over the training split; loss and accuracy summed over all ranks."""
    began, epochs = time.perf_counter(), trainer.config.epochs
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, samples
    for indices in trainer.epoch_batches(len(y)):
        indices = indices.to(x.device)
        totals += torch.tensor(trainer.step(x[indices], y[indices], global_batch), dtype=torch.float64)
        task.advance(
            note=f"epoch {epoch + 1}/{epochs}, loss {float(totals[0] / totals[2]):.3f}, "
            f"acc {float(totals[1] / totals[2]):.1%}"
        )
    if trainer.world > 1:
        dist.all_reduce(totals)
    return EpochStats(
        epoch=epoch + 1,
        epochs=epochs,
        loss=float(totals[0] / totals[2]),
        accuracy=float(totals[1] / totals[2]),
        lr=float(trainer.scheduler.get_last_lr()[0]),
        seconds=time.perf_counter() - began,
    )


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


def _saved_state(
    path: Path, resume: bool, space: SearchSpace, dataset: Dataset, config: TrainConfig
) -> dict[str, Any] | None:
    """The checkpoint to continue from, or None to start fresh; refuses to overwrite finished work."""
    if not path.exists():
        return None
    if not resume:
        raise QuadnasError(f"checkpoint {path} already exists: pass --resume to continue it, or another --out")
    saved = read_checkpoint(path)
    meta = meta_of(path, saved)
    check_space(meta, space)
    check_data(meta, dataset, "pass the same --data and --resolution, or another --out")
    old = TrainConfig.model_validate(meta.config)
    changed = [k for k, v in config.model_dump().items() if getattr(old, k) != v]
    if changed:
        was = ", ".join(f"{k}={getattr(old, k)}" for k in changed)
        raise QuadnasError(
            f"checkpoint {path} was trained with different settings ({was}): "
            f"resume with the same options, or pass another --out"
        )
    return saved


CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic algorithms (warn where none exists) and cuBLAS workspace for the duration of training.

    cuBLAS reads its workspace setting when the process first uses it, so a first use inside
    training is deterministic; the caller's environment is restored afterwards.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    workspace = os.environ.get(CUBLAS_WORKSPACE)
    os.environ.setdefault(CUBLAS_WORKSPACE, ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        if workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)


@contextmanager
def _process_group() -> Iterator[None]:
    """A gloo process group when launched by torchrun with several processes."""
    _, world = world_rank()
    created = world > 1 and not dist.is_initialized()
    if created:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


class _Silent(Progress):
    """What ranks other than 0 report: nothing."""

    def show(self, event: ProgressEvent) -> None:
        pass

    @contextmanager
    def task(self, what: str, total: int, done: int = 0, unit: str = "step") -> Iterator[Task]:
        yield Task(self, what, total, done, unit)
