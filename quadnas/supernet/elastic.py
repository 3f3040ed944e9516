"""The weight-shared block: every kernel, expansion, enhancement and identity from one set of weights.

Kernels smaller than the largest are centre crops of one depthwise kernel; an
expansion `e` uses the first `e * dim` hidden channels of the widest MLP; an enhanced
choice adds the block's one QuadEnhancer weight per 1x1 conv (sliced like the conv) to
the same conv weights the plain choice uses; identity skips the block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from quadnas.nn.blocks import LAYER_SCALE_INIT, QuadraBlock
from quadnas.nn.fused import quadratic_dw
from quadnas.nn.ops import EnhancedPointwise, enhance
from quadnas.space import BlockChoice
from quadnas.supernet.memory import scaled_gelu_pointwise


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias of one of QuadraBlock's 1x1 convs (pw1, pw2), which always have one."""
    assert conv.bias is not None
    return conv.bias


def enhancer(conv: nn.Conv2d) -> torch.Tensor:
    """The QuadEnhancer weight (k x out) of one of an enhancing supernet's 1x1 convs."""
    if not isinstance(conv, EnhancedPointwise):
        raise TypeError("this supernet has no enhanced choices: its 1x1 convs carry no QuadEnhancer")
    return conv.enhancer


def centre_crop(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The central `kernel` x `kernel` window of a square conv kernel."""
    start = (weight.shape[-1] - kernel) // 2
    return weight[..., start : start + kernel, start : start + kernel]


class ElasticQuadraBlock(nn.Module):
    """A QuadraBlock at its largest kernel and expansion that runs any smaller choice.

    With `memory_efficient` (the training default) the quadratic branch keeps only
    its input for backward and recomputes the depthwise outputs, instead of holding
    both factors of the product `dw_a(x) * dw_b(x)` alive, and the MLP keeps neither
    its GELU output nor its last 1x1 conv's output (`scaled_gelu_pointwise`).
    """

    def __init__(
        self,
        dim: int,
        max_kernel: int,
        max_expansion: int,
        memory_efficient: bool = True,
        layer_scale: float = LAYER_SCALE_INIT,
        enhance: int = 0,
    ):
        super().__init__()
        self.full = QuadraBlock(dim, max_kernel, max_expansion, layer_scale, enhance)
        self.dim = dim
        self.memory_efficient = memory_efficient

    def quadratic(self, x: torch.Tensor, kernel: int) -> torch.Tensor:
        """`g1 * q(LN(x))` with the centre-cropped kernels, in one fused op (`nn.fused.quadratic_dw`).

        The layer scale is folded into `dw_a` and `dw_c` (`g (a b + c) = (g a) b + g c`), so no
        product of the branch is kept for backward besides the fused op's input.
        """
        q = self.full.qconv
        g = self.full.gamma1.view(-1, 1, 1, 1)
        w_a, w_b, w_c = (centre_crop(conv.weight, kernel) for conv in (q.dw_a, q.dw_b, q.dw_c))
        return quadratic_dw(self.full.norm1(x), g * w_a, w_b, g * w_c, g.flatten() * conv_bias(q.dw_c))

    def mlp(self, x: torch.Tensor, expansion: int, enhanced: bool = False) -> torch.Tensor:
        """`g2 * PW2(GELU(PW1(LN(x))))` on the first `expansion * dim` hidden channels, QuadEnhanced or not."""
        f, hidden = self.full, expansion * self.dim
        if enhanced:
            y = F.conv2d(f.norm2(x), f.pw1.weight[:hidden])
            h = enhance(y, enhancer(f.pw1)[:, :hidden], conv_bias(f.pw1)[:hidden])
            z = F.conv2d(f.act(h), f.pw2.weight[:, :hidden])
            return f.gamma2 * enhance(z, enhancer(f.pw2), conv_bias(f.pw2))
        h = F.conv2d(f.norm2(x), f.pw1.weight[:hidden], conv_bias(f.pw1)[:hidden])
        if self.memory_efficient and torch.is_grad_enabled():
            return scaled_gelu_pointwise(h, f.pw2.weight[:, :hidden], conv_bias(f.pw2), f.gamma2)
        return f.gamma2 * F.conv2d(f.act(h), f.pw2.weight[:, :hidden], f.pw2.bias)

    def forward(self, x: torch.Tensor, choice: BlockChoice) -> torch.Tensor:
        if choice.is_identity:
            return x
        if self.memory_efficient and torch.is_grad_enabled() and x.requires_grad:
            x = x + checkpoint(self.quadratic, x, choice.kernel, use_reentrant=False)
        else:
            x = x + self.quadratic(x, choice.kernel)
        return x + self.mlp(x, choice.expansion, choice.enhanced)

    @torch.no_grad()
    def copy_into(self, block: QuadraBlock, choice: BlockChoice) -> None:
        """Copy the weights of `choice` into a standalone `QuadraBlock`."""
        f, hidden = self.full, choice.expansion * self.dim
        for name in ("norm1", "norm2"):
            getattr(block, name).load_state_dict(getattr(f, name).state_dict())
        for name in ("dw_a", "dw_b", "dw_c"):
            src, dst = getattr(f.qconv, name), getattr(block.qconv, name)
            dst.weight.copy_(centre_crop(src.weight, choice.kernel))
            if src.bias is not None:
                dst.bias.copy_(src.bias)
        block.gamma1.copy_(f.gamma1)
        block.gamma2.copy_(f.gamma2)
        block.pw1.weight.copy_(f.pw1.weight[:hidden])
        conv_bias(block.pw1).copy_(conv_bias(f.pw1)[:hidden])
        block.pw2.weight.copy_(f.pw2.weight[:, :hidden])
        conv_bias(block.pw2).copy_(conv_bias(f.pw2))
        if choice.enhanced:
            enhancer(block.pw1).copy_(enhancer(f.pw1)[:, :hidden])
            enhancer(block.pw2).copy_(enhancer(f.pw2))
