"""Training-memory savers for the supernet's MLP.

`scaled_gelu_pointwise(h, w, b, g)` computes `g * conv1x1(GELU(h), w, b)` but keeps
only `h` (and the parameters) for backward: GELU(h) is recomputed there, and the
layer scale's gradient `sum(grad * (W GELU(h) + b))` is taken from the unscaled
weight and bias gradients, so neither the 4C-wide GELU output nor the 1x1 conv's
output stays alive between forward and backward.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F


class _ScaledGeluPointwise(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(h, weight, bias, gamma)
        return gamma * F.conv2d(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        saved = ctx.saved_tensors
        h = saved[0]
        # Under autocast forward ran the conv in h's (low) precision; backward runs outside autocast.
        weight, bias, gamma = (t.to(h.dtype) for t in saved[1:])
        grad = grad.to(h.dtype)
        conv_backward = partial(
            torch.ops.aten.convolution_backward,
            weight=weight,
            bias_sizes=[weight.shape[0]],
            stride=[1, 1],
            padding=[0, 0],
            dilation=[1, 1],
            transposed=False,
            output_padding=[0, 0],
            groups=1,
        )
        _, grad_w, grad_b = conv_backward(grad, F.gelu(h), output_mask=[False, True, True])
        grad_g = conv_backward(grad * gamma, h, output_mask=[True, False, False])[0]  # h: only its shape is used
        grad_gamma = (weight * grad_w).sum((1, 2, 3)) + bias * grad_b
        scale = gamma.flatten()
        grads = (
            torch.ops.aten.gelu_backward(grad_g, h),
            scale.view(-1, 1, 1, 1) * grad_w,
            scale * grad_b,
            grad_gamma.view_as(gamma),
        )
        return tuple(g.to(t.dtype) for g, t in zip(grads, saved))


def scaled_gelu_pointwise(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gamma: torch.Tensor
) -> torch.Tensor:
    """`gamma * conv2d(GELU(h), weight, bias)` (a 1x1 conv, exact GELU) that saves only `h` for backward.

    `weight` is (C_out, C_in, 1, 1), `bias` (C_out,), `gamma` a per-channel scale (C_out, 1, 1).
    """
    # torch.autograd.Function.apply is unannotated (and called through our subclass, so the config's
    # untyped_calls_exclude for torch does not reach it)
    out: torch.Tensor = _ScaledGeluPointwise.apply(h, weight, bias, gamma)  # type: ignore[no-untyped-call]
    return out
