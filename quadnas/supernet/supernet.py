"""The weight-shared supernet: `forward(x, arch)` and `extract(arch)`."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from quadnas.nn.blocks import LAYER_SCALE_INIT, Downsample, Head, QuadraBlock, Stem, init_weights
from quadnas.nn.net import QuadraNet
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.elastic import ElasticQuadraBlock


class Supernet(nn.Module):
    """Every arch of `space` in one network; subnets inherit its weights.

    `width` < 1 builds a proxy: every stage that fraction as wide (`SearchSpace.scaled`),
    which ranks the same archs at a fraction of the cost; its subnets are proxy-width networks.
    """

    def __init__(
        self,
        space: SearchSpace,
        num_classes: int,
        memory_efficient: bool = True,
        layer_scale_init: float = LAYER_SCALE_INIT,
        width: float = 1.0,
    ):
        super().__init__()
        self.space, self.num_classes, self.width = space, num_classes, width
        self.net_space = space.scaled(width)
        self.stage_of = space.stage_of_block()
        dims = self.net_space.dims
        self.stem = Stem(space.config.in_channels, dims[0], space.config.stem_patch)
        self.downsamples = nn.ModuleList(Downsample(dims[i - 1], dims[i]) for i in range(1, len(dims)))
        self.blocks = nn.ModuleList(
            ElasticQuadraBlock(
                dims[s], space.max_kernel, space.max_expansion, memory_efficient, layer_scale_init, space.enhancer
            )
            for s in self.stage_of
        )
        self.head = Head(dims[-1], num_classes)
        init_weights(self)

    def set_memory_efficient(self, enabled: bool) -> None:
        for block in self.blocks:
            if isinstance(block, ElasticQuadraBlock):  # not a bench.methods.KernelTransformBlock, which has none
                block.memory_efficient = enabled

    def elastic_blocks(self) -> list[ElasticQuadraBlock]:
        """`blocks`, typed: each an ElasticQuadraBlock (unless bench.methods.KernelTransformTrainer wrapped them)."""
        blocks = list(self.blocks)
        for block in blocks:
            if not isinstance(block, ElasticQuadraBlock):
                raise TypeError(f"supernet block {type(block).__name__} is not an ElasticQuadraBlock")
        return cast(list[ElasticQuadraBlock], blocks)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        x = self.stem(x)
        stage_of = self.stage_of
        for i, (block, choice) in enumerate(zip(self.blocks, arch.blocks)):
            if i > 0 and stage_of[i] != stage_of[i - 1]:
                x = self.downsamples[stage_of[i] - 1](x)
            x = block(x, choice)
        logits: torch.Tensor = self.head(x)
        return logits

    @torch.no_grad()
    def extract(self, arch: Arch) -> QuadraNet:
        """A standalone `QuadraNet` of `arch` (at the supernet's width) with the supernet's weights copied in."""
        net = QuadraNet(self.net_space, arch, self.num_classes)
        net.stem.load_state_dict(self.stem.state_dict())
        net.downsamples.load_state_dict(self.downsamples.state_dict())
        net.head.load_state_dict(self.head.state_dict())
        blocks = iter(self.elastic_blocks())
        for stage, choices in zip(net.stages, self.net_space.stages_of(arch)):
            targets = iter(cast(nn.Sequential, stage))  # QuadraNet's stages: a Sequential of QuadraBlocks each
            for choice in choices:
                source = next(blocks)
                if not choice.is_identity:
                    target = next(targets)
                    assert isinstance(target, QuadraBlock)
                    source.copy_into(target, choice)
        return net.eval()
