"""Size and arithmetic of a network: parameters and multiply-accumulates."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@torch.no_grad()
def model_stats(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Parameters, and multiply-accumulates of one forward pass at `input_shape` (FLOPs / 2).

    FlopCounterMode counts convolutions and matrix products; element-wise products,
    norms and activations are not counted. The forward runs on a meta-device copy: no
    arithmetic, and `model` itself is left as it was.
    """
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter:
        copy.deepcopy(model).to("meta").eval()(torch.zeros(input_shape, device="meta"))
    return params, counter.get_total_flops() // 2
