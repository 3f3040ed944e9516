"""Primitive layers: quadratic depthwise conv, quadratic linear, LayerNorm over channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from quadnas.nn import fused


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def depthwise(channels: int, kernel: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=bias)


class QuadraticDWConv(nn.Module):
    """Quadratic depthwise conv `q(x) = dw_a(x) * dw_b(x) + dw_c(x)`.

    Three true depthwise convs (a fused grouped conv was slower on onnxruntime,
    OpenVINO and eager CPU in a one-off check). The low-rank quadratic neuron
    `(W_a x)(W_b x) + W_c x + b` per channel: only `dw_c` carries the bias.
    Eager CPU runs use the fused kernel (`nn.fused`) unless a hook watches one of the
    three convs; tracing and ONNX export see the three convs.
    """

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.dw_a = depthwise(channels, kernel, bias=False)
        self.dw_b = depthwise(channels, kernel, bias=False)
        self.dw_c = depthwise(channels, kernel, bias=True)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """`q(x)`, times the per-channel `scale` (C x 1 x 1) where given.

        The fused kernel takes the scale folded into its weights (`g (a b + c) = (g a) b + g c`),
        so training keeps no product of the branch alive; the plain form multiplies.
        """
        convs = (self.dw_a, self.dw_b, self.dw_c)
        if fused.applies(x) and not any(c._forward_hooks or c._forward_pre_hooks for c in convs):
            w_a, w_c, bias = self.dw_a.weight, self.dw_c.weight, self.dw_c.bias
            if scale is not None:
                g = scale.view(-1, 1, 1, 1)
                w_a, w_c, bias = g * w_a, g * w_c, None if bias is None else scale.flatten() * bias
            return fused.quadratic_dw(x, w_a, self.dw_b.weight, w_c, bias)
        y: torch.Tensor = self.dw_a(x) * self.dw_b(x) + self.dw_c(x)
        return y if scale is None else scale * y


class QuadraticLinear(nn.Module):
    """Quadratic neuron layer `(W_a x) * (W_b x) + W_c x + b` over the last dimension."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.a = nn.Linear(in_features, out_features, bias=False)
        self.b = nn.Linear(in_features, out_features, bias=False)
        self.c = nn.Linear(in_features, out_features, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.a(x) * self.b(x) + self.c(x)
        return y


class QuadEnhancer(nn.Module):
    """QuadEnhancer (arXiv 2510.03276) on a linear layer's output `y` (no bias before it):

    `z = y * (1 + sum_{i=1..k} w_i * roll(y, -i)) + b` along the feature axis `dim`: each feature is
    multiplied by a learned mix of its next `k` neighbours (circularly); `k * D` extra weights.
    `w` starts at zero, so an enhanced layer starts as the plain layer `y + b`.
    """

    def __init__(self, features: int, k: int = 1, dim: int = 1):
        super().__init__()
        if not 1 <= k < features:
            raise ValueError(f"k must lie in [1, {features}), got {k}")
        self.k, self.dim = k, dim
        self.weight = nn.Parameter(torch.zeros(k, features))
        self.bias = nn.Parameter(torch.zeros(features))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return enhance(y, self.weight, self.bias, self.dim)


def enhance(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """`y * (1 + sum_i weight[i-1] * roll(y, -i, dim)) + bias`, the weights broadcast along `dim`."""
    shape = [1] * y.ndim
    shape[dim] = -1
    mix = sum(weight[i - 1].view(shape) * torch.roll(y, -i, dims=dim) for i in range(1, weight.shape[0] + 1))
    z = y * (1 + mix)
    return z if bias is None else z + bias.view(shape)


class EnhancedPointwise(nn.Conv2d):
    """A 1x1 conv whose output is quadratically enhanced: `enhance(W x, w, b)` over channels.

    Its parameters are a plain 1x1 conv's (`weight`, `bias`) plus `enhancer` (k x out); with the
    enhancer at zero it computes exactly the plain conv, so the two share weights.
    """

    def __init__(self, cin: int, cout: int, k: int = 1):
        super().__init__(cin, cout, 1)
        self.enhancer = nn.Parameter(torch.zeros(k, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return enhance(F.conv2d(x, self.weight), self.enhancer, self.bias)
