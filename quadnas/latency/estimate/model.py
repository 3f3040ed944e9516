"""The operator cost model behind the shipped estimated tables (docs/tables.md says how they are made).

A network is a list of primitive ops (`Prim`). Each costs

    max(flops / (peak * eff[class]), bytes / (bandwidth * eff_bw)) + overhead

where the class is dense / pointwise / depthwise / patchify conv, linear, or vector
(element-wise ops: LayerNorm, GELU, activations, multiply, add, pooling, copies).
Op kinds a runtime fuses into their producer (`DeviceModel.fused`) pay no overhead.
A per-inference constant (`fixed_us`: input transfer, dispatch) is charged to the stem.
A few parameters per device are fitted (least squares in log space) to published
whole-network latencies; `decompose` turns a quadnas op spec into the same primitives,
either as a compiling runtime runs it (bias in the conv) or as PyTorch eager launches it
on CUDA (`DeviceModel.eager`, see `decompose`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.optimize import least_squares

from quadnas.space import OpSpec

CONV_CLASSES = ("dense", "pointwise", "depthwise", "patchify")
CLASSES = CONV_CLASSES + ("linear", "vector")
#: FLOPs per output element of the element-wise kinds (GELU: erf/tanh polynomial; LayerNorm: mean,
#: variance, normalise, affine; act: hard-swish/hard-sigmoid; sigmoid: exp + divide; batchnorm:
#: inference normalise + affine; bias: per-channel add). pool / maxpool: per input element / per
#: window element.
VECTOR_FLOPS = {
    "add": 1,
    "mul": 1,
    "act": 4,
    "relu": 1,
    "sigmoid": 8,
    "gelu": 12,
    "layernorm": 8,
    "batchnorm": 4,
    "bias": 1,
    "pool": 1,
    "maxpool": 1,
    "copy": 0,
    "nms": 0,
}
#: per-channel parameters each vector kind reads
CHANNEL_PARAMS = {"layernorm": 2, "batchnorm": 4, "bias": 1}
BINARY = {"add", "mul"}
VECTOR_KINDS = tuple(VECTOR_FLOPS)
KINDS = ("conv", "linear") + VECTOR_KINDS


@dataclass(frozen=True)
class Prim:
    """One primitive op on an input of `height` x `width` x `cin`.

    conv: `kernel`, `stride`, `padding` (None: kernel // 2), `groups`; linear: cin -> cout features;
    pool: global mean to 1x1; maxpool: `kernel`/`stride` window (ceil mode); other vector kinds
    keep the shape (`cout` = `cin`).
    """

    kind: str
    height: int
    width: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    padding: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown primitive kind '{self.kind}'")

    @property
    def out_hw(self) -> tuple[int, int]:
        if self.kind == "conv":
            pad = self.kernel // 2 if self.padding is None else self.padding
            h, w = ((n + 2 * pad - self.kernel) // self.stride + 1 for n in (self.height, self.width))
            return h, w
        if self.kind == "maxpool":
            h, w = (math.ceil((n - self.kernel) / self.stride) + 1 for n in (self.height, self.width))
            return h, w
        if self.kind in ("pool", "linear"):
            return (1, 1)
        return (self.height, self.width)

    @property
    def op_class(self) -> str:
        if self.kind == "linear":
            return "linear"
        if self.kind != "conv":
            return "vector"
        if self.groups > 1 and self.groups == self.cin == self.cout:
            return "depthwise"
        if self.kernel == 1:
            return "pointwise"
        if self.kernel == self.stride and self.padding == 0:
            return "patchify"
        return "dense"

    @property
    def flops(self) -> float:
        ho, wo = self.out_hw
        if self.kind == "conv":
            return 2.0 * ho * wo * self.cout * (self.cin // self.groups) * self.kernel**2
        if self.kind == "linear":
            return 2.0 * self.cin * self.cout
        if self.kind == "maxpool":
            return float(ho * wo * self.cout * self.kernel**2 * VECTOR_FLOPS["maxpool"])
        if self.kind == "pool":
            return float(self.height * self.width * self.cin * VECTOR_FLOPS["pool"])
        return float(ho * wo * self.cout * VECTOR_FLOPS[self.kind])

    @property
    def elements(self) -> float:
        """Elements read and written (activations and weights)."""
        ho, wo = self.out_hw
        inputs = self.height * self.width * self.cin * (2 if self.kind in BINARY else 1)
        outputs = ho * wo * self.cout
        if self.kind == "conv":
            weights = self.kernel**2 * (self.cin // self.groups) * self.cout + self.cout
        elif self.kind == "linear":
            weights = self.cin * self.cout + self.cout
        else:
            weights = CHANNEL_PARAMS.get(self.kind, 0) * self.cin
        return float(inputs + outputs + weights)


# ---- devices ----------------------------------------------------------------
class DeviceModel(BaseModel):
    """Peak numbers (nominal, from data sheets) and the fitted efficiencies of one device + runtime."""

    model_config = ConfigDict(extra="forbid")
    peak_gflops: float = Field(gt=0, description="nominal peak at the table's precision")
    bandwidth_gbs: float = Field(gt=0, description="nominal DRAM bandwidth")
    bytes_per_element: float = Field(gt=0)
    eff: dict[str, float] = Field(description="compute efficiency per op class (fraction of peak)")
    eff_bw: float = Field(gt=0, le=1, description="fraction of bandwidth reached")
    overhead_us: float = Field(ge=0, description="per (unfused) op")
    fixed_us: float = Field(default=0.0, ge=0, description="per inference, charged to the stem")
    fused: list[str] = Field(default_factory=list, description="op kinds fused into their producer")
    eager: bool = Field(default=False, description="op specs run as PyTorch eager launches them (see decompose)")

    @field_validator("eff")
    @classmethod
    def _every_class(cls, eff: dict[str, float]) -> dict[str, float]:
        missing = [c for c in CLASSES if c not in eff]
        if missing or any(not 0 < v <= 1 for v in eff.values()):
            raise ValueError(f"eff needs a value in (0, 1] for each of {CLASSES}; missing {missing}")
        return eff

    def prim_ms(self, prim: Prim) -> float:
        compute_s = prim.flops / (self.peak_gflops * 1e9 * self.eff[prim.op_class])
        memory_s = prim.elements * self.bytes_per_element / (self.bandwidth_gbs * 1e9 * self.eff_bw)
        overhead_s = 0.0 if prim.kind in self.fused else self.overhead_us * 1e-6
        return 1e3 * (max(compute_s, memory_s) + overhead_s)

    def prims_ms(self, prims: Sequence[Prim]) -> float:
        """Sum of the primitives (no per-inference constant)."""
        return sum(self.prim_ms(p) for p in prims)

    def network_ms(self, prims: Sequence[Prim]) -> float:
        """A whole network: its primitives plus the per-inference constant."""
        return self.prims_ms(prims) + self.fixed_us * 1e-3

    def spec_ms(self, spec: OpSpec, stem_patch: int = 4) -> float:
        """A quadnas op spec; the stem carries the per-inference constant."""
        extra = self.fixed_us * 1e-3 if spec.op == "stem" else 0.0
        return self.prims_ms(decompose(spec, stem_patch, self.eager)) + extra

    def header(self) -> dict[str, Any]:
        """The model as a table header value; `eager` only where set (older tables lack the key)."""
        return self.model_dump(exclude=None if self.eager else {"eager"})

    def get(self, name: str) -> float:
        """A parameter by dotted name (`eff.dense`, `overhead_us`)."""
        return self.eff[name[4:]] if name.startswith("eff.") else getattr(self, name)

    def with_params(self, values: dict[str, float], ties: dict[str, str] | None = None) -> DeviceModel:
        """A copy with parameters set by dotted name; `ties` copies one efficiency to another class."""
        eff = dict(self.eff)
        fields = {}
        for name, value in values.items():
            if name.startswith("eff."):
                eff[name[4:]] = value
            else:
                fields[name] = value
        for target, source in (ties or {}).items():
            eff[target] = eff[source]
        return self.model_copy(update={**fields, "eff": eff})


# ---- quadnas op specs as primitives -------------------------------------------
def decompose(spec: OpSpec, stem_patch: int = 4, eager: bool = False) -> list[Prim]:
    """The primitives of an op spec, mirroring quadnas.nn.blocks (stem, QuadraBlock, downsample, head).

    `eager`: the kernels PyTorch eager launches on CUDA for the op inside the whole network.
    cuDNN convs add their bias in a kernel of their own (`bias`). After the stem every activation
    is channels_last (LayerNorm2d returns its NHWC result permuted back), so LayerNorm2d's permutes
    are views and `layer_norm` reads a contiguous tensor; only the stem's LayerNorm2d, after an NCHW
    conv, copies its input first (`layer_norm` makes its input contiguous). On a channels_last input
    cuDNN runs a conv in NHWC and reorders a weight that is not NHWC-contiguous on every call: the
    downsample's 2x2 weight (a `copy` of its elements); 1x1 and depthwise weights already are.
    """
    h, w, c = spec.height, spec.width, spec.cin

    def conv(
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        bias: bool = True,
    ) -> list[Prim]:
        prim = Prim("conv", h, w, cin, cout, kernel, stride, groups, padding)
        return [prim, Prim("bias", *prim.out_hw, cout, cout)] if eager and bias else [prim]

    if spec.op == "stem":
        size = (h // stem_patch, w // stem_patch)
        copy = [Prim("copy", *size, spec.cout, spec.cout)] if eager else []
        return (
            conv(c, spec.cout, stem_patch, stem_patch, padding=0)
            + copy
            + [Prim("layernorm", *size, spec.cout, spec.cout)]
        )
    if spec.op == "downsample":
        weights = 2 * 2 * c * spec.cout
        reorder = [Prim("copy", 1, 1, weights, weights)] if eager else []
        return [Prim("layernorm", h, w, c, c)] + reorder + conv(c, spec.cout, 2, 2, padding=0)
    if spec.op == "head":
        return [Prim("pool", h, w, c, c), Prim("layernorm", 1, 1, c, c), Prim("linear", 1, 1, c, spec.cout)]
    if spec.op == "quadra_block":
        k, hidden, q = spec.kernel, c * spec.expansion, spec.enhance
        same = {kind: Prim(kind, h, w, c, c) for kind in ("layernorm", "mul", "add")}

        def pointwise(cin: int, cout: int) -> list[Prim]:
            """A 1x1 conv; QuadEnhanced (`y * (1 + sum_i w_i * roll(y, -i)) + b`) where `q` > 0.

            Each neighbour costs a roll (a copy), a multiply by its weights and an add; then the
            product with `y` and the bias add, which the conv no longer carries.
            """
            if not q:
                return conv(cin, cout)
            step = [Prim(kind, h, w, cout, cout) for kind in ("copy", "mul", "add")]
            return (
                conv(cin, cout, bias=False) + step * q + [Prim("mul", h, w, cout, cout), Prim("bias", h, w, cout, cout)]
            )

        return [
            same["layernorm"],
            *conv(c, c, k, groups=c, bias=False),
            *conv(c, c, k, groups=c, bias=False),
            *conv(c, c, k, groups=c),
            same["mul"],
            same["add"],  # q(LN(x)) = a*b + c
            same["mul"],
            same["add"],  # x + gamma1 * q
            same["layernorm"],
            *pointwise(c, hidden),  # LN, pw expand
            Prim("gelu", h, w, hidden, hidden),
            *pointwise(hidden, c),
            same["mul"],
            same["add"],  # x + gamma2 * mlp
        ]
    raise ValueError(f"unknown op '{spec.op}'")


# ---- fitting -----------------------------------------------------------------
@dataclass(frozen=True)
class FitPoint:
    """One published whole-network latency the model is fitted to."""

    network: str
    resolution: int
    target_ms: float
    weight: float
    description: str
    prims: tuple[Prim, ...]
    device_override: dict[str, Any] | None = None  # e.g. other precision for this point

    def model_ms(self, device: DeviceModel) -> float:
        dev = device.model_copy(update=self.device_override) if self.device_override else device
        return dev.network_ms(self.prims)


@dataclass(frozen=True)
class FitResult:
    device: DeviceModel
    points: tuple[FitPoint, ...]
    predicted_ms: tuple[float, ...]

    @property
    def residuals_pct(self) -> np.ndarray:
        """model / target - 1, in percent."""
        return 100.0 * (np.array(self.predicted_ms) / [p.target_ms for p in self.points] - 1.0)

    @property
    def mape_pct(self) -> float:
        return float(np.mean(np.abs(self.residuals_pct)))

    @property
    def max_err_pct(self) -> float:
        return float(np.max(np.abs(self.residuals_pct)))

    @property
    def cost(self) -> float:
        """The objective `fit` minimises: half the weighted sum of squared log residuals."""
        logs = np.log(np.array(self.predicted_ms) / [p.target_ms for p in self.points])
        return float(0.5 * np.sum(np.array([p.weight for p in self.points]) * logs**2))


def fit(
    prior: DeviceModel,
    points: Sequence[FitPoint],
    free: dict[str, tuple[float, float]],
    ties: dict[str, str] | None = None,
) -> FitResult:
    """Fit the `free` parameters (name -> (low, high) bounds) by weighted least squares of log latency.

    Deterministic: starts from the prior's values (clipped into the bounds).
    """
    names = list(free)
    low = np.log([free[n][0] for n in names])
    high = np.log([free[n][1] for n in names])
    start = np.clip(np.log([max(prior.get(n), 1e-12) for n in names]), low + 1e-9, high - 1e-9)
    weights = np.sqrt([p.weight for p in points])
    targets = np.log([p.target_ms for p in points])

    def device_at(x: np.ndarray) -> DeviceModel:
        return prior.with_params(dict(zip(names, np.exp(x).tolist())), ties)

    def residuals(x: np.ndarray) -> np.ndarray:
        device = device_at(x)
        weighted: np.ndarray = weights * (np.log([p.model_ms(device) for p in points]) - targets)
        return weighted

    result = least_squares(residuals, start, bounds=(low, high), x_scale=1.0, method="trf")
    device = device_at(result.x)
    return FitResult(device, tuple(points), tuple(p.model_ms(device) for p in points))
