"""QuadraNet: a fixed, exportable network for one arch of a search space."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from quadnas.nn.blocks import build_op, init_weights
from quadnas.space import Arch, SearchSpace


class QuadraNet(nn.Module):
    """Stem, four stages of QuadraBlocks with downsamples between, and a head.

    Built from the arch's op specs at the deployment resolution, so it is exactly
    the network the latency table describes. Identity blocks are simply absent.
    """

    def __init__(self, space: SearchSpace, arch: Arch, num_classes: int | None = None):
        super().__init__()
        self.space, self.arch = space, arch
        specs = space.op_specs(arch)
        if num_classes is not None:
            specs[-1] = replace(specs[-1], cout=num_classes)
        self.num_classes = specs[-1].cout
        self.stem = build_op(specs[0], space.config.stem_patch)
        self.stages = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        rest = iter(specs[1:-1])
        for i, blocks in enumerate(space.stages_of(arch)):
            if i > 0:
                self.downsamples.append(build_op(next(rest)))
            n = sum(not b.is_identity for b in blocks)
            self.stages.append(nn.Sequential(*(build_op(next(rest)) for _ in range(n))))
        self.head = build_op(specs[-1])
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downsamples[i - 1](x)
            x = stage(x)
        logits: torch.Tensor = self.head(x)
        return logits
