"""The torch modules a measurement times: one op spec, a whole network's input, an empty model.

The profiler, the kit and validation build the same modules, so a kit's files and a profile
time the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from quadnas.nn.blocks import build_op, init_weights
from quadnas.space import OpSpec, SearchSpace


def space_at(space: SearchSpace, resolution: int | None) -> SearchSpace:
    """`space` deployed at `resolution` (a different fingerprint: other shapes, other rows)."""
    if resolution is None or resolution == space.config.resolution:
        return space
    space.check_resolution(resolution)
    return SearchSpace(space.config.model_copy(update={"resolution": resolution}), space.source)


def op_module(spec: OpSpec, space: SearchSpace) -> nn.Module:
    """The module that runs `spec`, initialised like a network."""
    module = build_op(spec, space.config.stem_patch)
    init_weights(module)
    return module.eval()


def network_input_shape(space: SearchSpace) -> tuple[int, int, int, int]:
    r = space.config.resolution
    return (1, space.config.in_channels, r, r)


class _Identity(nn.Module):
    """The smallest model a runtime still calls: its time is the fixed per-call cost."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def overhead_module() -> tuple[nn.Module, tuple[int, ...]]:
    return _Identity(), (1, 8)
