"""Neural network modules of QuadraNet."""

from quadnas.nn.blocks import QuadraBlock, build_op
from quadnas.nn.net import QuadraNet
from quadnas.nn.ops import LayerNorm2d, QuadraticDWConv, QuadraticLinear

__all__ = ["LayerNorm2d", "QuadraBlock", "QuadraNet", "QuadraticDWConv", "QuadraticLinear", "build_op"]
