"""Network pieces built from op specs: stem, QuadraBlock, downsample, head.

`build_op(spec)` is the one place an op spec becomes a module; the network, the
profiler and the exporter all go through it.
"""

from __future__ import annotations

import torch
from torch import nn

from quadnas.nn.ops import EnhancedPointwise, LayerNorm2d, QuadraticDWConv
from quadnas.space import OpSpec

LAYER_SCALE_INIT = 1e-6


class Stem(nn.Sequential):
    """Patchify: `patch`x`patch` conv with stride `patch`, then LayerNorm."""

    def __init__(self, cin: int, cout: int, patch: int = 4):
        super().__init__(nn.Conv2d(cin, cout, patch, stride=patch), LayerNorm2d(cout))


class Downsample(nn.Sequential):
    """LayerNorm, then a 2x2 stride-2 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__(LayerNorm2d(cin), nn.Conv2d(cin, cout, 2, stride=2))


class Head(nn.Module):
    """Global average pool, LayerNorm, linear classifier."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.fc(self.norm(x.mean(dim=(2, 3))))
        return logits


def pointwise(cin: int, cout: int, enhance: int) -> nn.Conv2d:
    """A 1x1 conv, QuadEnhanced with `k = enhance` neighbours when `enhance` > 0."""
    return EnhancedPointwise(cin, cout, enhance) if enhance else nn.Conv2d(cin, cout, 1)


class QuadraBlock(nn.Module):
    """`x + g1 * q(LN(x))`, then `x + g2 * PW2(GELU(PW1(LN(x))))` with expansion `e`.

    `enhance` > 0 makes both 1x1 convs QuadEnhanced (`EnhancedPointwise` with that k).
    """

    def __init__(self, dim: int, kernel: int, expansion: int, layer_scale: float = LAYER_SCALE_INIT, enhance: int = 0):
        super().__init__()
        hidden = dim * expansion
        self.norm1 = LayerNorm2d(dim)
        self.qconv = QuadraticDWConv(dim, kernel)
        self.gamma1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.norm2 = LayerNorm2d(dim)
        self.pw1 = pointwise(dim, hidden, enhance)
        self.act = nn.GELU()
        self.pw2 = pointwise(hidden, dim, enhance)
        self.gamma2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.qconv(self.norm1(x), self.gamma1)
        y: torch.Tensor = x + self.gamma2 * self.pw2(self.act(self.pw1(self.norm2(x))))
        return y


def build_op(spec: OpSpec, stem_patch: int = 4) -> nn.Module:
    """The module that runs `spec`."""
    if spec.op == "stem":
        return Stem(spec.cin, spec.cout, stem_patch)
    if spec.op == "quadra_block":
        return QuadraBlock(spec.cin, spec.kernel, spec.expansion, enhance=spec.enhance)
    if spec.op == "downsample":
        return Downsample(spec.cin, spec.cout)
    if spec.op == "head":
        return Head(spec.cin, spec.cout)
    raise ValueError(f"unknown op '{spec.op}'")


def op_input_shape(spec: OpSpec, batch: int = 1) -> tuple[int, int, int, int]:
    """The NCHW input shape `spec` works on."""
    return (batch, spec.cin, spec.height, spec.width)


def init_weights(module: nn.Module) -> None:
    """ConvNeXt-style init: truncated normal (std 0.02, cut at 2 std) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
