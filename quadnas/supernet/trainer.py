"""The one training loop: a model, a path sampler, the one optimiser and schedule, data from the loader.

Supernet training (uniform, sandwich with or without in-place distillation, FairNAS, kernel
transformation), stand-alone training and export's fine-tuning all run `fit`; they differ only
in the model and the `PathSampler`.

Data parallel: under torchrun every rank draws the same paths from the same seeds and trains
its shard of each global batch (`data.loader.EpochSampler`). Gradients are summed with one flat
`all_reduce` per step over the parameters the step's paths used, instead of DDP: DDP would need
`find_unused_parameters=True` (a graph walk per step, with a used set that changes every step),
whereas the flat reduction is simple, deterministic and keeps the one-process semantics (unused
parameters get no gradient, so AdamW leaves them alone). Only rank 0 writes and reports.

Precision: `bf16` and `fp16` run the forward pass under autocast (fp16 with a gradient scaler);
weights, optimiser and loss stay fp32. Statistics stay on the device and reach the host only
every `REPORT_EVERY` steps.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from quadnas.data.loader import EpochSampler, LabelledSet, epoch_batches
from quadnas.data.split import Split
from quadnas.data.transforms import Augment
from quadnas.errors import QuadnasError, Stopped
from quadnas.progress import Task
from quadnas.supernet.optim import make_optimizer
from quadnas.supernet.paths import PathSampler
from quadnas.supernet.runtime import StopRequest, world_rank

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
REPORT_EVERY = 10  # steps between host syncs of the running loss (progress notes, stop checks across ranks)


@dataclass(frozen=True)
class EpochStats:
    """Training loss and top-1 accuracy of the trained paths over one epoch (all ranks)."""

    epoch: int
    epochs: int
    loss: float
    accuracy: float
    lr: float
    seconds: float


def training_precision(precision: Precision, device: torch.device) -> tuple[Precision, str]:
    """The precision to train in on `device` and a note when it differs from the one asked for.

    fp16 needs a gradient scaler, which runs on CUDA only; a GPU without bf16 trains bf16 requests in fp16.
    """
    if precision == "fp16" and device.type != "cuda":
        raise QuadnasError("--amp fp16 needs a CUDA device (its gradient scaler): use --amp bf16 on the CPU")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16", "this GPU has no bf16: training in fp16 with a gradient scaler instead"
    return precision, ""


class Trainer:
    """A model with its path sampler, optimiser, schedule, precision and path RNG; `step` trains one batch."""

    def __init__(
        self,
        model: nn.Module,
        paths: PathSampler,
        *,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        total_steps: int,
        label_smoothing: float = 0.0,
        seed: int = 0,
        precision: Precision = "fp32",
        exempt: str | None = None,
    ):
        self.model, self.paths, self.label_smoothing = model, paths, label_smoothing
        self.precision, self.total_steps = precision, total_steps
        self.optimizer, self.scheduler = make_optimizer(model, lr, weight_decay, warmup_steps, total_steps, exempt)
        self.arch_rng = random.Random(seed)
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        self.rank, self.world = world_rank()
        self.steps_done = 0

    def forward(self, x: torch.Tensor, path: Any) -> torch.Tensor:
        logits: torch.Tensor = self.model(x) if path is None else self.model(x, path)
        return logits

    def _autocast(self, device: torch.device) -> Any:
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)

    def step(self, x: torch.Tensor, y: torch.Tensor, global_batch: int) -> torch.Tensor:
        """One update on this rank's part of a global batch; returns `(loss sum, correct, samples)` on the device.

        Loss and correct count are averaged over the step's paths; the loss is the batch mean
        over the global batch, so ranks' summed gradients equal one process's.
        """
        paths = self.paths.paths(self.arch_rng)
        self.optimizer.zero_grad(set_to_none=True)
        stats = torch.zeros(3, dtype=torch.float64, device=x.device)
        first: torch.Tensor | None = None
        for path in paths:
            with self._autocast(x.device):
                logits = self.forward(x, path)
            logits = logits.float()
            if first is not None and self.paths.distil:
                loss = -(first.softmax(1) * logits.log_softmax(1)).sum()
            else:
                loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=self.label_smoothing)
            first = logits.detach() if first is None else first
            self.scaler.scale(loss / (global_batch * len(paths))).backward()
            stats[0] += loss.detach().double() / len(paths)
            stats[1] += (logits.detach().argmax(1) == y).sum().double() / len(paths)
        stats[2] = len(y)
        self._reduce_gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.steps_done += 1
        return stats

    def _reduce_gradients(self) -> None:
        """Sum gradients over ranks; every rank ran the same paths, so the same parameters have one."""
        if self.world == 1 or not dist.is_initialized():
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights that a resume needs to continue bit-identically."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "steps_done": self.steps_done,
            "rng": {"torch": torch.get_rng_state(), "arch": self.arch_rng.getstate()},
        }

    def load_state_dict(self, model: dict[str, Any], training: dict[str, Any]) -> None:
        self.model.load_state_dict(model)
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        self.scaler.load_state_dict(training["scaler"])
        self.steps_done = int(training["steps_done"])
        torch.set_rng_state(training["rng"]["torch"])
        self.arch_rng.setstate(training["rng"]["arch"])


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Full global batches per epoch (the remainder is dropped; reshuffled every epoch)."""
    return max(1, num_train // batch_size)


def steps_for(epochs: float, num_train: int, batch_size: int) -> int:
    """Steps of `epochs` (fractional allowed) passes of full batches; at least one."""
    return max(1, round(epochs * steps_per_epoch(num_train, batch_size)))


@dataclass
class Loop:
    """What `fit` trains on and how: data, batch, steps, augmentation, loader workers, device."""

    data: LabelledSet
    batch_size: int  # global (over ranks); capped at the split's size
    total_steps: int
    seed: int = 0
    augment: Augment = "none"
    workers: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def global_batch(self) -> int:
        return min(self.batch_size, len(self.data))  # type: ignore[arg-type]

    @property
    def per_epoch(self) -> int:
        return steps_per_epoch(len(self.data), self.global_batch)  # type: ignore[arg-type]


SaveHook = Callable[[Trainer, dict[str, Any], str], None]  # (trainer, loop state, why: "step" | "epoch" | "stop")


@dataclass
class CheckpointPolicy:
    """When `fit` asks for a checkpoint besides epoch ends: every `steps` steps, every `minutes` minutes."""

    steps: int | None = None
    minutes: float | None = None


def fit(
    trainer: Trainer,
    loop: Loop,
    *,
    task: Task | None = None,
    epochs: int | None = None,
    totals: torch.Tensor | None = None,
    save: SaveHook | None = None,
    policy: CheckpointPolicy | None = None,
    stop: StopRequest | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    resume_hint: str = "",
) -> None:
    """Train from `trainer.steps_done` to `loop.total_steps` (epoch by epoch, resuming mid-epoch).

    `save` (rank 0) writes a checkpoint at each epoch end, when `policy` says so, and on a stop
    signal, after which every rank raises `Stopped` with `resume_hint`. `totals`: the running
    epoch's (loss sum, correct, samples) so far, from a checkpoint.
    """
    rank, world = world_rank()
    global_batch = loop.global_batch
    if global_batch % world:
        raise QuadnasError(
            f"a global batch of {global_batch} images cannot be split evenly over {world} processes: "
            f"use a --batch-size that is a multiple of {world}"
        )
    rank_batch, per_epoch = global_batch // world, loop.per_epoch
    data = loop.data.with_view(augment=loop.augment, seed=loop.seed) if isinstance(loop.data, Split) else loop.data
    sampler = EpochSampler(len(loop.data), loop.seed, rank, world)  # type: ignore[arg-type]
    epochs = epochs if epochs is not None else -(-loop.total_steps // per_epoch)
    running = totals.clone() if totals is not None else torch.zeros(3, dtype=torch.float64)
    running = running.to(loop.device)
    last_save, began = time.monotonic(), time.perf_counter()
    while trainer.steps_done < loop.total_steps:
        epoch, within = divmod(trainer.steps_done, per_epoch)
        sampler.set_epoch(epoch, within * rank_batch)
        steps = min(per_epoch - within, loop.total_steps - trainer.steps_done)
        for x, y in islice(epoch_batches(data, sampler, rank_batch, loop.workers, loop.device), steps):
            running += trainer.step(x, y, global_batch)
            done = trainer.steps_done
            report = done % REPORT_EVERY == 0 or done == loop.total_steps
            if task is not None:
                note = ""
                if report:
                    loss, correct, n = running.tolist()
                    note = f"epoch {epoch + 1}/{epochs}, loss {loss / max(n, 1):.3f}, acc {correct / max(n, 1):.1%}"
                task.advance(note=note)
            if done % per_epoch == 0:
                break  # the epoch end is handled below
            signal_number = stop.agreed() if stop is not None and (world == 1 or report) else 0
            due = policy is not None and (
                (policy.steps is not None and done % policy.steps == 0)
                or (policy.minutes is not None and time.monotonic() - last_save >= 60 * policy.minutes)
            )
            if save is not None and (due or signal_number):
                save(trainer, {"epoch_totals": running.cpu()}, "stop" if signal_number else "step")
                last_save = time.monotonic()
            if signal_number:
                _stopped(signal_number, done, loop.total_steps, resume_hint)
        if trainer.steps_done % per_epoch == 0 or trainer.steps_done == loop.total_steps:
            stats = _epoch_stats(trainer, running, epoch + 1, epochs, time.perf_counter() - began)
            running.zero_()
            if save is not None:
                save(trainer, {"epoch_totals": running.cpu()}, "epoch")
                last_save = time.monotonic()
            if on_epoch is not None and rank == 0:
                on_epoch(stats)
            began = time.perf_counter()
            signal_number = stop.agreed() if stop is not None else 0
            if signal_number and trainer.steps_done < loop.total_steps:
                _stopped(signal_number, trainer.steps_done, loop.total_steps, resume_hint)


def _epoch_stats(trainer: Trainer, running: torch.Tensor, epoch: int, epochs: int, seconds: float) -> EpochStats:
    totals = running.clone()
    if trainer.world > 1 and dist.is_initialized():
        dist.all_reduce(totals)
    loss, correct, n = totals.tolist()
    return EpochStats(
        epoch, epochs, loss / max(n, 1), correct / max(n, 1), float(trainer.scheduler.get_last_lr()[0]), seconds
    )


def _stopped(signal_number: int, step: int, total: int, resume_hint: str) -> None:
    """Raise `Stopped` on every rank once rank 0 has written its checkpoint (a rank that left early
    would make torchrun kill rank 0 in the middle of the write)."""
    import signal

    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
    name = signal.Signals(signal_number).name
    raise Stopped(f"stopped by {name} after step {step} of {total}, checkpoint written: {resume_hint}", signal_number)
