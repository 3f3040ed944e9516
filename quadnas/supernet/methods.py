"""Supernet training methods compared by the rank-correlation benchmark, and stand-alone training.

Every method is the one `trainer.Trainer` with its own path sampling (`paths`):

- `UniformTrainer`: one uniformly sampled path per step (the package default).
- `SandwichTrainer`: largest, smallest and random paths per step, all on labels (`TrainConfig.sandwich`).
- `InplaceDistillTrainer`: the same paths; the largest learns from the labels, the others
  from its soft predictions (in-place distillation).
- `FairNASTrainer`: strict fairness; path m takes the m-th choice of a fresh random
  permutation of every block's choices, all paths accumulated into one update.
- `KernelTransformTrainer`: uniform sampling with OFA's kernel transformation.

`methods()` names them with their compute; `train_supernet_method` trains one.
`train_standalone` trains a single network with the same loop, optimiser and schedule;
`standalone_accuracy` is an arch's validation accuracy after training it from random init.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from quadnas.data.loader import LabelledSet
from quadnas.data.transforms import Augment
from quadnas.nn.blocks import QuadraBlock
from quadnas.nn.net import QuadraNet
from quadnas.progress import Progress
from quadnas.space import Arch, BlockChoice, SearchSpace
from quadnas.supernet.elastic import ElasticQuadraBlock, centre_crop
from quadnas.supernet.evaluate import accuracy
from quadnas.supernet.paths import Fair, PathSampler, Sandwich, Uniform, fairnas_paths
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.supernet import Supernet
from quadnas.supernet.train import SupernetTrainer
from quadnas.supernet.trainer import Loop, Trainer, fit, steps_for

if TYPE_CHECKING:
    from quadnas.data import Dataset

ModuleT = TypeVar("ModuleT", bound=nn.Module)
__all__ = ["fairnas_paths"]  # re-exported: the benchmark's tests import it from here


# ---- supernet training methods ------------------------------------------------
class UniformTrainer(SupernetTrainer):
    """The package's trainer as is: one uniformly sampled path per step."""

    @staticmethod
    def sampler(space: SearchSpace, config: TrainConfig) -> PathSampler:
        return Uniform(space)

    @classmethod
    def paths_per_step(cls, space: SearchSpace, config: TrainConfig) -> int:
        return cls.sampler(space, config).per_step()

    def __init__(self, space: SearchSpace, num_classes: int, config: TrainConfig, steps_per_epoch: int):
        super().__init__(space, num_classes, config, steps_per_epoch, sampler=self.sampler(space, config))


class FairNASTrainer(UniformTrainer):
    """All `len(choices)` fair paths per step, accumulated into one update."""

    @staticmethod
    def sampler(space: SearchSpace, config: TrainConfig) -> PathSampler:
        return Fair(space)


class SandwichTrainer(UniformTrainer):
    """The package's sandwich rule (config.sandwich): largest, smallest and random paths, all on labels."""

    @staticmethod
    def sampler(space: SearchSpace, config: TrainConfig) -> PathSampler:
        return Sandwich(space, config.sandwich_random)


class InplaceDistillTrainer(UniformTrainer):
    """Sandwich rule with in-place distillation: the largest path learns the labels, the others its predictions."""

    @staticmethod
    def sampler(space: SearchSpace, config: TrainConfig) -> PathSampler:
        return Sandwich(space, config.sandwich_random, distil=True)


class KernelTransformBlock(nn.Module):
    """An elastic block whose smaller kernels pass through OFA's learned kernel transformation.

    Kernel k (below the largest) is the centre k x k of the next larger *transformed*
    kernel, flattened and multiplied by a k^2 x k^2 matrix (identity at init), one per
    depthwise conv (dw_a, dw_b, dw_c) and kernel size, shared by the block's channels.
    """

    CONVS = ("dw_a", "dw_b", "dw_c")

    def __init__(self, block: ElasticQuadraBlock, kernels: Sequence[int]):
        super().__init__()
        self.block = block
        self.smaller = sorted(kernels, reverse=True)[1:]
        self.transforms = nn.ParameterDict(
            {f"{conv}_{k}": nn.Parameter(torch.eye(k * k)) for conv in self.CONVS for k in self.smaller}
        )

    def kernel(self, conv: str, kernel: int) -> torch.Tensor:
        weight: torch.Tensor = getattr(self.block.full.qconv, conv).weight
        for k in self.smaller:
            if k < kernel:
                break
            flat = centre_crop(weight, k).reshape(weight.shape[0], k * k)
            weight = (flat @ self.transforms[f"{conv}_{k}"]).reshape(-1, 1, k, k)
        return weight

    def quadratic(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        full, dim = self.block.full, self.block.dim
        y = full.norm1(x)

        def conv(name: str) -> torch.Tensor:
            bias = getattr(full.qconv, name).bias
            return F.conv2d(y, self.kernel(name, kernel), bias, padding=kernel // 2, groups=dim)

        return full.gamma1 * (conv("dw_a") * conv("dw_b") + conv("dw_c"))

    def forward(self, x: torch.Tensor, choice: BlockChoice) -> torch.Tensor:
        if choice.is_identity:
            return x
        x = x + self.quadratic(x, choice.kernel)
        return x + self.block.mlp(x, choice.expansion, choice.enhanced)


class KernelTransformTrainer(UniformTrainer):
    """Uniform sampling on a supernet whose blocks carry kernel transforms (not weight-decayed)."""

    def __init__(self, space: SearchSpace, num_classes: int, config: TrainConfig, steps_per_epoch: int):
        kernels = space.config.choices.kernel

        def wrap(model: Supernet) -> None:
            model.blocks = nn.ModuleList(KernelTransformBlock(b, kernels) for b in model.elastic_blocks())

        SupernetTrainer.__init__(
            self, space, num_classes, config, steps_per_epoch, Uniform(space), adapt=wrap, exempt="transforms."
        )


@dataclass(frozen=True)
class Method:
    """A supernet training method: its trainer, its compute relative to uniform, the sandwich flag it needs."""

    trainer: type[UniformTrainer]
    compute: float  # relative to uniform's path-epochs
    sandwich: bool = False
    width: float = 1.0  # stage widths of the supernet as a fraction of the space's (a cheaper proxy)
    seed: int | None = None  # the supernet's training seed (init and data order); None: the config's


def methods(long_factor: float) -> dict[str, Method]:
    """The methods by name; `long` is uniform with `long_factor` times its compute, `proxy-w*` narrower supernets
    (`-short`: half the steps)."""
    return {
        "uniform": Method(UniformTrainer, 1.0),
        "long": Method(UniformTrainer, long_factor),
        "sandwich": Method(InplaceDistillTrainer, 1.0, sandwich=True),
        "sandwich-labels": Method(SandwichTrainer, 1.0, sandwich=True),
        "fairnas": Method(FairNASTrainer, 1.0),
        "kernel-transform": Method(KernelTransformTrainer, 1.0),
        "proxy-w0.5": Method(UniformTrainer, 1.0, width=0.5),
        "proxy-w0.25": Method(UniformTrainer, 1.0, width=0.25),
        "proxy-w0.5-short": Method(UniformTrainer, 0.5, width=0.5),  # about the training cost of proxy-w0.25
    }


def _device_of(data: LabelledSet) -> torch.device:
    """Where `data`'s tensors live (a TensorDataset moved to a GPU), else the CPU."""
    tensors = getattr(data, "tensors", None)
    return tensors[0].device if tensors is not None and not hasattr(data, "source") else torch.device("cpu")


def _augment(config: TrainConfig, data: Dataset) -> Augment:
    return data.default_augment() if config.augment == "auto" else config.augment


def train_supernet_method(
    method: Method, space: SearchSpace, data: Dataset, config: TrainConfig, path_epochs: float, warmup_fraction: float
) -> tuple[nn.Module, int, int]:
    """A supernet trained by `method` on the device of `data`: (model in eval mode, steps, paths per step).

    It trains `path_epochs` times the method's compute in path-epochs (a method with P
    paths per step takes 1/P of the steps), warming up over `warmup_fraction` of the
    steps; `config`'s epochs and warm-up are replaced accordingly.
    """
    config = config.model_copy(update={"sandwich": method.sandwich, "width": method.width})
    if method.seed is not None:
        config = config.model_copy(update={"seed": method.seed})
    paths = method.trainer.paths_per_step(space, config)
    n = len(data.train)
    steps = steps_for(path_epochs * method.compute / paths, n, config.batch_size)
    config = config.model_copy(update={"epochs": 1, "warmup_epochs": warmup_fraction})
    trainer = method.trainer(space, data.num_classes, config, steps)
    device = _device_of(data.train)
    trainer.model.to(device)  # in place: the optimizer keeps the same parameters
    fit(trainer, Loop(data.train, config.batch_size, steps, config.seed, _augment(config, data), 0, device))
    return trainer.model.eval(), steps, paths


# ---- stand-alone training -------------------------------------------------------
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
    device = torch.device(device) if device is not None else _device_of(train)
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
        augment=_augment(config, data),
        device=device,
    )
    return accuracy(net, data.val)
