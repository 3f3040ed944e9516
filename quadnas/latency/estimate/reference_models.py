"""Reference networks as lists of primitive ops, written from their papers' architecture tables.

Batch norm is folded into convs and ReLU/ReLU6 fused into them (every compiling runtime we
model does both; `resnet50_eager` lists them as PyTorch eager runs them); ops a runtime runs
separately (hard-swish, sigmoid, squeeze-excite, residual adds, concatenations, channel shuffles)
are listed. Torchvision variants where nn-Meter used torchvision (SqueezeNet 1.0, MnasNet 1.0 =
B1, GoogLeNet with 3x3 in its "5x5" branch).
`NETWORKS[name](resolution)` gives the list; `reference_macs` checks them against the papers.
"""

from __future__ import annotations

from collections.abc import Callable

from quadnas.latency.estimate.model import Prim

Layers = list[Prim]


class _Builder:
    """Appends primitives while tracking the current feature map."""

    def __init__(self, resolution: int, channels: int = 3):
        self.h = self.w = resolution
        self.c = channels
        self.prims: Layers = []

    def fork(self) -> _Builder:
        """A builder for a parallel branch: same feature map, no primitives yet."""
        branch = _Builder(self.h, self.c)
        branch.w = self.w
        return branch

    def conv(self, cout: int, k: int = 1, s: int = 1, groups: int = 1, padding: int | None = None) -> _Builder:
        p = Prim("conv", self.h, self.w, self.c, cout, k, s, groups, padding)
        self.prims.append(p)
        (self.h, self.w), self.c = p.out_hw, cout
        return self

    def dw(self, k: int = 3, s: int = 1) -> _Builder:
        return self.conv(self.c, k, s, groups=self.c)

    def vector(self, kind: str, times: int = 1) -> _Builder:
        self.prims += [Prim(kind, self.h, self.w, self.c, self.c)] * times
        return self

    def maxpool(self, k: int = 3, s: int = 2) -> _Builder:
        p = Prim("maxpool", self.h, self.w, self.c, self.c, k, s)
        self.prims.append(p)
        self.h, self.w = p.out_hw
        return self

    def pool(self) -> _Builder:
        self.prims.append(Prim("pool", self.h, self.w, self.c, self.c))
        self.h = self.w = 1
        return self

    def linear(self, cout: int) -> _Builder:
        self.prims.append(Prim("linear", 1, 1, self.h * self.w * self.c, cout))
        self.h = self.w = 1
        self.c = cout
        return self

    def squeeze_excite(self, reduced: int, gate: str) -> _Builder:
        """pool, fc + ReLU, fc, gate (hard-sigmoid 'act' or 'sigmoid'), channel multiply."""
        h, w, c = self.h, self.w, self.c
        self.prims += [
            Prim("pool", h, w, c, c),
            Prim("linear", 1, 1, c, reduced),
            Prim("linear", 1, 1, reduced, c),
            Prim(gate, 1, 1, c, c),
            Prim("mul", h, w, c, c),
        ]
        return self


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v1(resolution: int = 224, classes: int = 1000, features_only: bool = False) -> Layers:
    b = _Builder(resolution).conv(32, 3, 2)
    for cout, s in (
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    ):
        b.dw(3, s).conv(cout)
    if features_only:
        return b.prims
    return b.pool().linear(classes).prims


def _inverted_residual(
    b: _Builder, expand: int, cout: int, k: int, s: int, se: bool = False, act: bool = False
) -> None:
    """MBConv: [pw expand] -> dw kxk -> [SE] -> pw project, residual add when shapes allow."""
    cin, hidden = b.c, expand
    if hidden != cin:
        b.conv(hidden)
        if act:
            b.vector("act")
    b.dw(k, s)
    if act:
        b.vector("act")
    if se:
        b.squeeze_excite(_divisible(hidden / 4), "act")
    b.conv(cout)
    if s == 1 and cin == cout:
        b.vector("add")


def mobilenet_v2(resolution: int = 224, classes: int = 1000) -> Layers:
    b = _Builder(resolution).conv(32, 3, 2)
    for t, c, n, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for i in range(n):
            _inverted_residual(b, b.c * t, c, 3, s if i == 0 else 1)
    return b.conv(1280).pool().linear(classes).prims


def mnasnet(resolution: int = 224, classes: int = 1000) -> Layers:
    """torchvision mnasnet1_0 (MnasNet-B1)."""
    b = _Builder(resolution).conv(32, 3, 2).dw(3).conv(16)
    for t, k, c, n, s in [
        (3, 3, 24, 3, 2),
        (3, 5, 40, 3, 2),
        (6, 5, 80, 3, 2),
        (6, 3, 96, 2, 1),
        (6, 5, 192, 4, 2),
        (6, 3, 320, 1, 1),
    ]:
        for i in range(n):
            _inverted_residual(b, b.c * t, c, k, s if i == 0 else 1)
    return b.conv(1280).pool().linear(classes).prims


def mobilenet_v3_large(resolution: int = 224, classes: int = 1000) -> Layers:
    b = _Builder(resolution).conv(16, 3, 2).vector("act")
    table = [  # kernel, expanded, out, SE, hard-swish, stride
        (3, 16, 16, False, False, 1),
        (3, 64, 24, False, False, 2),
        (3, 72, 24, False, False, 1),
        (5, 72, 40, True, False, 2),
        (5, 120, 40, True, False, 1),
        (5, 120, 40, True, False, 1),
        (3, 240, 80, False, True, 2),
        (3, 200, 80, False, True, 1),
        (3, 184, 80, False, True, 1),
        (3, 184, 80, False, True, 1),
        (3, 480, 112, True, True, 1),
        (3, 672, 112, True, True, 1),
        (5, 672, 160, True, True, 2),
        (5, 960, 160, True, True, 1),
        (5, 960, 160, True, True, 1),
    ]
    for k, expanded, out, se, hswish, s in table:
        _inverted_residual(b, expanded, out, k, s, se, hswish)
    b.conv(960).vector("act").pool().linear(1280).vector("act")
    return b.linear(classes).prims


def shufflenet_v2(resolution: int = 224, classes: int = 1000) -> Layers:
    """ShuffleNetV2 1.0x: split, branch, concatenate and channel shuffle are separate ops."""
    b = _Builder(resolution).conv(24, 3, 2).maxpool()
    for cout, repeats in [(116, 4), (232, 8), (464, 4)]:
        for i in range(repeats):
            half = cout // 2
            if i == 0:
                left = b.fork().dw(3, 2).conv(half)
                b.conv(half).dw(3, 2).conv(half)
                b.prims += left.prims
            else:
                b.c = cout
                b.vector("copy")  # channel split
                b.c = half
                b.conv(half).dw(3).conv(half)
            b.c = cout
            b.vector("copy", 2)  # concatenate, channel shuffle
    return b.conv(1024).pool().linear(classes).prims


def resnet18(resolution: int = 224, classes: int = 1000) -> Layers:
    b = _Builder(resolution).conv(64, 7, 2).maxpool(3, 2)
    for cout, s in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
        h, w, cin = b.h, b.w, b.c
        b.conv(cout, 3, s).conv(cout, 3)
        if s != 1 or cin != cout:
            b.prims.append(Prim("conv", h, w, cin, cout, 1, s))
        b.vector("add")
    return b.pool().linear(classes).prims


def resnet50(resolution: int = 224, classes: int = 1000, eager: bool = False) -> Layers:
    """ResNet-50 v1.5 (stride in the 3x3 conv).

    `eager`: torchvision's model as PyTorch eager runs it: every batch norm and ReLU a kernel of
    its own after its (bias-free) conv, ReLU also after each residual add; nothing folded or fused.
    """

    def conv_bn(builder: _Builder, cout: int, k: int = 1, s: int = 1, relu: bool = True) -> None:
        builder.conv(cout, k, s)
        if eager:
            builder.vector("batchnorm")
            if relu:
                builder.vector("relu")

    b = _Builder(resolution)
    conv_bn(b, 64, 7, 2)
    b.maxpool(3, 2)
    for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            shortcut = b.fork()
            conv_bn(b, width)
            conv_bn(b, width, 3, s)
            conv_bn(b, width * 4, relu=False)
            if i == 0:
                conv_bn(shortcut, width * 4, 1, s, relu=False)
                b.prims += shortcut.prims
            b.vector("add")
            if eager:
                b.vector("relu")
    return b.pool().linear(classes).prims


def resnet50_eager(resolution: int = 224, classes: int = 1000) -> Layers:
    """ResNet-50 v1.5 as PyTorch eager launches it (see `resnet50`)."""
    return resnet50(resolution, classes, eager=True)


def squeezenet(resolution: int = 224, classes: int = 1000) -> Layers:
    """SqueezeNet 1.0 (torchvision squeezenet1_0)."""
    b = _Builder(resolution).conv(96, 7, 2, padding=0).maxpool()
    fires: list[tuple[int, int] | str] = [
        (16, 64),
        (16, 64),
        (32, 128),
        "pool",
        (32, 128),
        (48, 192),
        (48, 192),
        (64, 256),
        "pool",
        (64, 256),
    ]
    for fire in fires:
        if isinstance(fire, str):  # "pool"
            b.maxpool()
            continue
        squeeze, expand = fire
        b.conv(squeeze)
        h, w, c = b.h, b.w, b.c
        b.prims.append(Prim("conv", h, w, c, expand, 1))
        b.conv(expand, 3)
        b.c = 2 * expand
        b.vector("copy")  # concatenate
    return b.conv(classes).pool().prims


def alexnet(resolution: int = 224, classes: int = 1000) -> Layers:
    b = _Builder(resolution).conv(64, 11, 4, padding=2).maxpool().conv(192, 5).maxpool()
    b.conv(384, 3).conv(256, 3).conv(256, 3).maxpool()
    return b.linear(4096).linear(4096).linear(classes).prims


def vgg16(resolution: int = 224, classes: int = 1000) -> Layers:
    b = _Builder(resolution)
    for cout, n in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(n):
            b.conv(cout, 3)
        b.maxpool(2, 2)
    return b.linear(4096).linear(4096).linear(classes).prims


def googlenet(resolution: int = 224, classes: int = 1000) -> Layers:
    """torchvision googlenet (3x3 conv in the '5x5' branch)."""
    b = _Builder(resolution).conv(64, 7, 2).maxpool().conv(64).conv(192, 3).maxpool()
    modules: list[tuple[int, int, int, int, int, int] | str] = [
        (64, 96, 128, 16, 32, 32),
        (128, 128, 192, 32, 96, 64),
        "pool",
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
        "pool",
        (256, 160, 320, 32, 128, 128),
        (384, 192, 384, 48, 128, 128),
    ]
    for m in modules:
        if isinstance(m, str):  # "pool"
            b.maxpool()
            continue
        c1, r3, c3, r5, c5, proj = m
        h, w, c = b.h, b.w, b.c
        b.prims += [
            Prim("conv", h, w, c, c1),
            Prim("conv", h, w, c, r3),
            Prim("conv", h, w, r3, c3, 3),
            Prim("conv", h, w, c, r5),
            Prim("conv", h, w, r5, c5, 3),
            Prim("maxpool", h, w, c, c, 3, 1),
            Prim("conv", h, w, c, proj),
        ]
        b.c = c1 + c3 + c5 + proj
        b.vector("copy")  # concatenate
    return b.pool().linear(classes).prims


def ssd_mobilenet_v1(resolution: int = 300, classes: int = 91) -> Layers:
    """SSD-MobileNet-v1 (TF object detection API, as in MLPerf): extra layers, 1x1 box
    predictors (3 anchors on the first map, 6 on the others), NMS as one op."""
    b = _Builder(resolution)
    b.prims = mobilenet_v1(resolution, features_only=True)
    first = next(p for p in b.prims if p.kind == "conv" and p.cout == 512 and p.kernel == 1)
    maps = [(first.height, first.width, 512, 3)]
    b.h, b.w = b.prims[-1].out_hw
    b.c = 1024
    maps.append((b.h, b.w, 1024, 6))
    for squeeze, out in [(256, 512), (128, 256), (128, 256), (64, 128)]:
        b.conv(squeeze).conv(out, 3, 2)
        maps.append((b.h, b.w, out, 6))
    for h, w, c, anchors in maps:
        b.prims += [Prim("conv", h, w, c, anchors * 4), Prim("conv", h, w, c, anchors * classes)]
    b.prims.append(Prim("nms", 1, 1, 1, 1))
    return b.prims


NETWORKS: dict[str, Callable[..., Layers]] = {
    "MobileNetV1": mobilenet_v1,
    "MobileNetV2": mobilenet_v2,
    "MnasNet": mnasnet,
    "MobileNetV3-Large": mobilenet_v3_large,
    "ShuffleNetV2": shufflenet_v2,
    "ResNet-18": resnet18,
    "ResNet-50": resnet50,
    "ResNet-50-eager": resnet50_eager,
    "SqueezeNet": squeezenet,
    "AlexNet": alexnet,
    "VGG16": vgg16,
    "GoogLeNet": googlenet,
    "SSD-MobileNet-v1": ssd_mobilenet_v1,
}

#: Multiply-accumulates (millions) the papers / torchvision report, to check the layer lists.
PUBLISHED_MMACS: dict[str, float] = {
    "MobileNetV1": 569,
    "MobileNetV2": 300,
    "MnasNet": 312,
    "MobileNetV3-Large": 219,
    "ShuffleNetV2": 146,
    "ResNet-18": 1814,
    "ResNet-50": 4089,
    "ResNet-50-eager": 4089,
    "SqueezeNet": 819,
    "AlexNet": 714,
    "VGG16": 15470,
    "GoogLeNet": 1500,
}


def reference_macs(name: str, resolution: int = 224) -> float:
    """Millions of MACs of a listed network's convs and linears."""
    return sum(p.flops / 2 for p in NETWORKS[name](resolution) if p.kind in ("conv", "linear")) / 1e6
