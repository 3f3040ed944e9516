"""Primitive layers: quadratic depthwise conv, quadratic linear, LayerNorm over channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
    """

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.dw_a = depthwise(channels, kernel, bias=False)
        self.dw_b = depthwise(channels, kernel, bias=False)
        self.dw_c = depthwise(channels, kernel, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.dw_a(x) * self.dw_b(x) + self.dw_c(x)
        return y


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
