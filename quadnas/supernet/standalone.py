"""Stand-alone training: one network from random init with the supernet's loop, optimiser and schedule.

`standalone_net` builds an arch as a plain `QuadraNet` with the supernet's layer scales;
`train_standalone` trains any network in place (export's fine-tuning uses it);
`standalone_accuracy` is an arch's validation accuracy after training it (the search's
finalists and the evidence scripts use it).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from quadnas.data.loader import LabelledSet
from quadnas.data.transforms import Augment
from quadnas.nn.blocks import QuadraBlock
from quadnas.nn.net import QuadraNet
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.evaluate import accuracy
from quadnas.supernet.paths import PathSampler
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.trainer import Loop, Trainer, fit

if TYPE_CHECKING:
    from quadnas.data import Dataset

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def data_device(data: LabelledSet) -> torch.device:
    """Where `data`'s tensors live (a TensorDataset moved to a GPU), else the CPU."""
    tensors = getattr(data, "tensors", None)
    return tensors[0].device if tensors is not None and not hasattr(data, "source") else torch.device("cpu")


def standalone_net(space: SearchSpace, arch: Arch, num_classes: int, layer_scale: float) -> QuadraNet:
    """`QuadraNet(space, arch, num_classes)` from random init, its layer scales set as the supernet's."""
    net = QuadraNet(space, arch, num_classes)
    with torch.no_grad():
        for block in net.modules():
            if isinstance(block, QuadraBlock):
                block.gamma1.fill_(layer_scale)
                block.gamma2.fill_(layer_scale)
    return net


def train_standalone(
    net: ModuleT,
    train: LabelledSet,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    warmup_steps: int = 0,
    label_smoothing: float = 0.0,
    seed: int = 0,
    progress: Progress | None = None,
    augment: Augment = "none",
    device: torch.device | str | None = None,
    workers: int = 0,
) -> ModuleT:
    """`net` trained in place for `steps` steps with the one loop, optimiser and schedule; returned in eval mode.

    Runs on `device` (default: where `train`'s tensors are, else the CPU); full batches of
    seeded shuffled passes, seen through `augment`. With `progress`, one advance per step.
    """
    device = torch.device(device) if device is not None else data_device(train)
    net.to(device).train()
    trainer = Trainer(
        net,
        PathSampler(),
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        total_steps=steps,
        label_smoothing=label_smoothing,
        seed=seed,
    )
    loop = Loop(train, batch_size, steps, seed, augment, workers, device)
    with nullcontext() if progress is None else progress.task("stand-alone training", steps, unit="step") as task:
        fit(trainer, loop, task=task)
    return net.eval()


def standalone_accuracy(
    space: SearchSpace,
    arch: Arch,
    data: Dataset,
    config: TrainConfig,
    steps: int,
    warmup_fraction: float,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
) -> float:
    """Validation accuracy of `arch` trained from random init (seeded by `config.seed`) with `config`'s recipe
    on `device` (default: the CPU); with `progress`, one advance per step."""
    torch.manual_seed(config.seed)
    net = standalone_net(space, arch, data.num_classes, config.layer_scale_init)
    train_standalone(
        net,
        data.train,
        steps=steps,
        lr=config.lr,
        weight_decay=config.weight_decay,
        batch_size=config.batch_size,
        warmup_steps=round(warmup_fraction * steps),
        label_smoothing=config.label_smoothing,
        seed=config.seed,
        progress=progress,
        augment=data.augment(config.augment),
        device=device,
    )
    return accuracy(net, data.val)
