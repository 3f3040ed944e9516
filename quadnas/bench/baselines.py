"""Networks compared by `scripts/bench_blocks.py` and `bench_blocks_gpu.py`: HorNet, ConvNeXt and QuadraNet variants.

For benchmarking only. Every network shares quadnas' stem, downsamples, head and
LayerNorm2d, and every block uses the same MLP (LayerNorm2d, 1x1 conv, GELU, 1x1
conv, layer scale) in NCHW, so the networks differ only in their spatial mixer:

- HorNet (Rao et al. 2022): gnConv of order 2/3/4/5 by stage (HorNet-T, 7x7
  depthwise variant, s = 1/3), written from the paper's definition.
- ConvNeXt: a 7x7 depthwise conv (no second residual; LN, MLP and layer scale follow).
- QuadraNet: quadnas' `QuadraNet` (QuadraBlock k7 e4); an equal-cost variant whose
  MLP hidden width per stage matches HorNet's block MACs; a memory-efficient variant
  built from quadnas' `Supernet` (largest arch of an equivalent space, quadratic
  branch checkpointed, lean MLP: the package's training default).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from unittest import mock

import torch
from torch import nn

from quadnas.nn import fused
from quadnas.nn.blocks import LAYER_SCALE_INIT, Downsample, Head, QuadraBlock, Stem, init_weights
from quadnas.nn.net import QuadraNet
from quadnas.nn.ops import LayerNorm2d, depthwise
from quadnas.nn.stats import model_stats
from quadnas.space import Arch, BlockChoice, SearchSpace
from quadnas.supernet import Supernet
from quadnas.supernet.elastic import ElasticQuadraBlock

DIMS = (64, 128, 256, 512)
DEPTHS = (2, 2, 6, 2)
HORNET_ORDERS = (2, 3, 4, 5)
KERNEL = 7
EXPANSION = 4
NUM_CLASSES = 1000
STEM_PATCH = 4


# ---- shared pieces -----------------------------------------------------------
def fused_op(on: bool) -> AbstractContextManager[object]:
    """A context in which the fused quadratic depthwise conv is on or off (`QUADNAS_FUSED`): a block built
    or run inside it takes that form; the setting before is put back on leaving."""
    return mock.patch.dict(os.environ, {fused.ENV_VAR: "1" if on else "0"})


class MLP(nn.Module):
    """`g * PW2(GELU(PW1(LN(x))))` with `hidden` channels."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.pw2 = nn.Conv2d(hidden, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.gamma * self.pw2(self.act(self.pw1(self.norm(x))))
        return out


class Backbone(nn.Module):
    """Stem, stages of `make_block(stage, dim)` with downsamples between, head."""

    def __init__(
        self,
        make_block: Callable[[int, int], nn.Module],
        dims: Sequence[int] = DIMS,
        depths: Sequence[int] = DEPTHS,
        num_classes: int = NUM_CLASSES,
    ):
        super().__init__()
        self.stem = Stem(3, dims[0], STEM_PATCH)
        self.downsamples = nn.ModuleList(Downsample(dims[i - 1], dims[i]) for i in range(1, len(dims)))
        self.stages = nn.ModuleList(
            nn.Sequential(*(make_block(s, dim) for _ in range(depth)))
            for s, (dim, depth) in enumerate(zip(dims, depths))
        )
        self.head = Head(dims[-1], num_classes)
        init_weights(self)

    forward = QuadraNet.forward  # the same stem / stages / downsamples / head walk


# ---- HorNet ------------------------------------------------------------------
def gnconv_dims(dim: int, order: int) -> list[int]:
    """Channel widths of the recursion, smallest first: `[C/2^(n-1), ..., C/2, C]`."""
    if dim % 2 ** (order - 1):
        raise ValueError(f"gnConv of order {order} needs a width divisible by {2 ** (order - 1)}, got {dim}")
    return [dim // 2**i for i in reversed(range(order))]


class GnConv(nn.Module):
    """Recursive gated convolution of order `n` (HorNet, 7x7 depthwise variant).

    A 1x1 conv projects x to 2C channels, split into p0 (C/2^(n-1)) and a stack q
    (the other widths); ONE depthwise conv mixes the stack (scaled by `s`); then
    `p_{k+1} = pw_k(p_k) * q_k`, and a final 1x1 projection.
    """

    def __init__(self, dim: int, order: int, kernel: int = KERNEL, scale: float = 1 / 3):
        super().__init__()
        self.dims = gnconv_dims(dim, order)
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = depthwise(sum(self.dims), kernel, bias=True)
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, stack = torch.split(self.proj_in(x), [self.dims[0], sum(self.dims)], dim=1)
        gates = torch.split(self.dwconv(stack) * self.scale, self.dims, dim=1)
        p = p * gates[0]
        for pw, gate in zip(self.pws, gates[1:]):
            p = pw(p) * gate
        out: torch.Tensor = self.proj_out(p)
        return out


class HorNetBlock(nn.Module):
    """`x + g1 * gnConv(LN(x))`, then `x + g2 * MLP(LN(x))` with ratio 4."""

    def __init__(self, dim: int, order: int, expansion: int = EXPANSION):
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.gnconv = GnConv(dim, order)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), LAYER_SCALE_INIT))
        self.mlp = MLP(dim, expansion * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma * self.gnconv(self.norm(x))
        out: torch.Tensor = x + self.mlp(x)
        return out


# ---- ConvNeXt ----------------------------------------------------------------
class ConvNeXtBlock(nn.Module):
    """`x + g * PW2(GELU(PW1(LN(DW7(x)))))`."""

    def __init__(self, dim: int, expansion: int = EXPANSION):
        super().__init__()
        self.dwconv = depthwise(dim, KERNEL, bias=True)
        self.mlp = MLP(dim, expansion * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.mlp(self.dwconv(x))
        return out


# ---- QuadraNet variants ------------------------------------------------------
class WideQuadraBlock(QuadraBlock):
    """A QuadraBlock whose MLP has `hidden` channels (any integer, not only `e * dim`)."""

    def __init__(self, dim: int, kernel: int, hidden: int):
        super().__init__(dim, kernel, 1)
        self.pw1 = nn.Conv2d(dim, hidden, 1)
        self.pw2 = nn.Conv2d(hidden, dim, 1)


class WithChoice(nn.Module):
    """Runs a supernet module (`Supernet` or `ElasticQuadraBlock`) at one fixed choice."""

    def __init__(self, module: nn.Module, choice: Arch | BlockChoice):
        super().__init__()
        self.module, self.choice = module, choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x, self.choice)
        return out


def bench_space(resolution: int) -> SearchSpace:
    """A one-choice space (k7 e4, no identity) with the benchmark's widths and depths."""
    return SearchSpace.from_dict(
        {
            "name": "bench-blocks",
            "resolution": resolution,
            "num_classes": NUM_CLASSES,
            "stem_patch": STEM_PATCH,
            "stages": [{"dim": d, "depth": n} for d, n in zip(DIMS, DEPTHS)],
            "choices": {"kernel": [KERNEL], "expansion": [EXPANSION], "identity": False},
        }
    )


# ---- MACs --------------------------------------------------------------------
def count_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of convolutions and matmuls for one input of `shape` (`model_stats`)."""
    return model_stats(module, shape)[1]


def stage_shape(stage: int, resolution: int) -> tuple[int, int, int, int]:
    """NCHW shape (batch 1) of a block in `stage`."""
    size = resolution // STEM_PATCH // 2**stage
    return (1, DIMS[stage], size, size)


@cache
def equal_cost_hidden(stage: int) -> int:
    """MLP width of a k7 QuadraBlock whose MACs match the HorNet block of `stage`."""
    shape = stage_shape(stage, 224)  # MACs per pixel do not depend on resolution
    dim = DIMS[stage]
    target = count_macs(HorNetBlock(dim, HORNET_ORDERS[stage]), shape)
    base = count_macs(WideQuadraBlock(dim, KERNEL, dim), shape)
    per_channel = count_macs(WideQuadraBlock(dim, KERNEL, 2 * dim), shape) - base
    return dim + round((target - base) * dim / per_channel)


# ---- the variants ------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One network of the comparison, as a whole and as one block per stage."""

    name: str
    description: str
    build_net: Callable[[int], nn.Module]  # resolution -> network
    build_block: Callable[[int], nn.Module]  # stage -> block
    training_only: bool = False  # inference is identical to another variant


def _quadranet(resolution: int) -> nn.Module:
    space = bench_space(resolution)
    return QuadraNet(space, space.largest())


def _supernet(resolution: int) -> nn.Module:
    space = bench_space(resolution)
    return WithChoice(Supernet(space, NUM_CLASSES, memory_efficient=True), space.largest())


def _elastic_block(stage: int) -> nn.Module:
    block = ElasticQuadraBlock(DIMS[stage], KERNEL, EXPANSION, memory_efficient=True)
    init_weights(block)
    return WithChoice(block, BlockChoice(KERNEL, EXPANSION))


def _initialised(block: nn.Module) -> nn.Module:
    init_weights(block)
    return block


def _equal_cost_block(stage: int) -> nn.Module:
    return _initialised(WideQuadraBlock(DIMS[stage], KERNEL, equal_cost_hidden(stage)))


def _equal_cost_net(resolution: int) -> nn.Module:
    hidden = [equal_cost_hidden(s) for s in range(len(DIMS))]
    return Backbone(lambda s, dim: WideQuadraBlock(dim, KERNEL, hidden[s]))


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "hornet",
            "HorNet-T-style gnConv (orders 2/3/4/5, 7x7 dw, s=1/3)",
            lambda r: Backbone(lambda s, dim: HorNetBlock(dim, HORNET_ORDERS[s])),
            lambda s: _initialised(HorNetBlock(DIMS[s], HORNET_ORDERS[s])),
        ),
        Variant(
            "convnext",
            "ConvNeXt block (7x7 dw, LN, MLP 4, layer scale)",
            lambda r: Backbone(lambda s, dim: ConvNeXtBlock(dim)),
            lambda s: _initialised(ConvNeXtBlock(DIMS[s])),
        ),
        Variant(
            "quadranet",
            "quadnas QuadraNet, QuadraBlock k7 e4",
            _quadranet,
            lambda s: _initialised(QuadraBlock(DIMS[s], KERNEL, EXPANSION)),
        ),
        Variant(
            "quadranet-eqcost",
            "QuadraBlock k7, MLP widened per stage to HorNet's MACs",
            _equal_cost_net,
            _equal_cost_block,
        ),
        Variant(
            "quadranet-me",
            "quadnas Supernet (largest arch), memory-efficient training: quadratic branch checkpointed, lean MLP",
            _supernet,
            _elastic_block,
            training_only=True,
        ),
    )
}
