"""Supernet training methods compared by the rank-correlation benchmark (`scripts/rank_correlation.py`).

Every method is the one `trainer.Trainer` with its own path sampling (`paths`):

- `UniformTrainer`: one uniformly sampled path per step (the package default).
- `SandwichTrainer`: largest, smallest and random paths per step, all on labels (`TrainConfig.sandwich`).
- `InplaceDistillTrainer`: the same paths; the largest learns from the labels, the others
  from its soft predictions (in-place distillation).
- `FairNASTrainer`: strict fairness; path m takes the m-th choice of a fresh random
  permutation of every block's choices, all paths accumulated into one update.
- `KernelTransformTrainer`: uniform sampling with OFA's kernel transformation.

`methods()` names them with their compute; `train_supernet_method` trains one. Stand-alone
training, which the product uses too, lives in `standalone`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from quadnas.space import BlockChoice, SearchSpace
from quadnas.supernet.elastic import ElasticQuadraBlock, centre_crop
from quadnas.supernet.paths import Fair, PathSampler, Sandwich, Uniform, fairnas_paths
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.standalone import data_device
from quadnas.supernet.supernet import Supernet
from quadnas.supernet.train import SupernetTrainer
from quadnas.supernet.trainer import Loop, fit, steps_for

if TYPE_CHECKING:
    from quadnas.data import Dataset

__all__ = ["fairnas_paths"]  # re-exported: the benchmark's tests import it from here


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
    (`-short`: half the steps, `-long`: `long_factor` times them, `-sandwich`: `sandwich` at that width)."""
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
        "proxy-w0.5-long": Method(UniformTrainer, long_factor, width=0.5),
        "proxy-w0.5-sandwich": Method(InplaceDistillTrainer, 1.0, sandwich=True, width=0.5),
    }


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
    device = data_device(data.train)
    trainer.model.to(device)  # in place: the optimizer keeps the same parameters
    fit(trainer, Loop(data.train, config.batch_size, steps, config.seed, data.augment(config.augment), 0, device))
    return trainer.model.eval(), steps, paths
