"""Rebuild the shipped ESTIMATED latency tables: cortex-a76 (cpu), myriad-x (vpu), a100 (gpu).

Fits the operator cost model (quadnas/latency/estimate/model.py) of each device to published
whole-network latencies (latency_tables/reference/published_latency_points.csv), then
writes one row per op spec of quadranet-t-qe, which has every op spec of the default space and
the QuadEnhanced blocks besides (`created` is kept from the existing
file unless --created is given).

Reproducible on any host. The fit's last digits depend on the host's floating point (numpy's
SIMD log/exp, LAPACK inside scipy), and on myriad-x one fitted parameter, eff.vector, is not
pinned by the points at all (above ~0.019 every vector op of the reference networks is memory
bound, so the objective is flat; the optimiser stops wherever rounding noise leaves it, yet
GELU rows depend on it by up to 1.7%). So:

1. fitted parameters are rounded to SIGNIFICANT digits and every row is computed from the
   rounded ones (the header reproduces every number);
2. the existing table's fitted parameters are kept when the rest of its cost model is the
   recipe's and they fit the points as well as the fresh fit does: objectives within COST_RTOL
   (1e-6) relative. Simulated host noise (up to 16 ULPs on every residual, 1e-9 on the fitted
   parameters) moves the rounded fit's objective by < 1e-7; a 1% change of any one target
   moves it by >= 3.6e-5 (and shows in the header anyway), of any pinned fitted parameter by
   >= 1.1e-4 (all three tables). --refit takes the fresh fit's rounding regardless (after
   changing the fit method or SIGNIFICANT);
3. a rebuilt table counts as unchanged when its text equals the file's except for numbers
   that differ by at most one unit in their last written digit (a rounding that ULP noise
   flipped); text and integers must match exactly (`text_differences`).

    .venv/bin/python scripts/build_estimated_tables.py            # write the tables, print the report
    .venv/bin/python scripts/build_estimated_tables.py --check    # exit 1 if a table would change
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import quadnas
from quadnas.errors import QuadnasError
from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.latency.estimate.model import DeviceModel, FitPoint, FitResult, Prim, decompose, fit
from quadnas.latency.estimate.reference_models import NETWORKS
from quadnas.latency.header import Calibration, Estimate, FittedNetwork, TableMeta
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import Arch, OpSpec, SearchSpace

POINTS_CSV = SHIPPED_TABLES_DIR / "reference" / "published_latency_points.csv"
SIGNIFICANT = 4  # fitted parameters are rounded, so the header reproduces every row exactly
#: the existing fit is kept while its objective is within this (relative) of the fresh fit's (module docstring)
COST_RTOL = 1e-6
PREDICTION_WEIGHT = 0.3
BUDGETS_MS = {"cortex-a76": 300.0, "myriad-x": 30.0, "a100": 3.0}
#: per-block MBConv latency ratios k5/k3, k7/k3 (Note10 CPU, TFLite) and the
#: MobileNetV2 width assumed at each resolution (expansion 6, stride 1)
DEPTHWISE_FACTS = {56: (24, 1.55, 2.37), 28: (32, 1.35, 1.84), 14: (96, 1.17, 1.40), 7: (160, 1.07, 1.16)}

# CSV model name -> (reference network, its layer list exists)
NETWORK_OF = {
    "nn-Meter mobilenetv1_0": "MobileNetV1",
    "nn-Meter mobilenetv2_0": "MobileNetV2",
    "nn-Meter mnasnet_0": "MnasNet",
    "nn-Meter resnet18_0": "ResNet-18",
    "MobileNetV2 1.0": "MobileNetV2",
    "ResNet-18": "ResNet-18",
    "MobileNetV3-Large": "MobileNetV3-Large",
    "squeezenet": "SqueezeNet",
    "SqueezeNet": "SqueezeNet",
    "googlenet": "GoogLeNet",
    "vgg16": "VGG16",
    "shufflenet_v2": "ShuffleNetV2",
    "mnasnet": "MnasNet",
    "alexnet": "AlexNet",
    "ResNet-50 v1.5": "ResNet-50",
    "SSD-MobileNet-v1": "SSD-MobileNet-v1",
}


@dataclass
class Recipe:
    """How one shipped table is estimated."""

    name: str
    aliases: list[str]
    backend: str
    backend_version: str
    precision: str
    threads: int | None
    method: str
    prior: DeviceModel
    free: dict[str, tuple[float, float]]
    select: Callable[[pd.DataFrame], list[FitPoint]]
    ties: dict[str, str] = field(default_factory=dict)
    #: False where the fit error measures nothing (e.g. targets derived from one network by one ratio):
    #: the calibration then states no expected error
    states_fit_error: bool = True
    #: more header keys, e.g. which LiteRT version and delegate a TFLite table assumes
    extra: dict[str, Any] = field(default_factory=dict)


# ---- point selection ------------------------------------------------------------
def _row(points: pd.DataFrame, device: str, model: str, runtime: str = "") -> pd.Series:
    hit = points[
        (points.device == device) & (points.model == model) & points.runtime.str.contains(runtime, regex=False)
    ]
    if len(hit) != 1:
        raise SystemExit(f"expected one reference row for {device} / {model} / {runtime!r}, found {len(hit)}")
    return hit.iloc[0]


def _point(
    row: pd.Series,
    weight: float,
    target: float | None = None,
    note: str = "",
    override: dict | None = None,
    network: str | None = None,
) -> FitPoint:
    network, resolution = network or NETWORK_OF[row.model], int(row.input)
    value = float(row.latency_ms)
    what = "prediction" if "prediction" in str(row.stat) else "measured"
    text = (
        f"{row.model} @{resolution}: {what} {value:g} ms ({row.device}; {row.runtime}; {row.precision}; "
        f"{row.threads_or_mode}) [{row.source}; {row.licence}]{note}"
    )
    prims = tuple(NETWORKS[network](resolution))
    return FitPoint(network, resolution, target if target is not None else value, weight, text, prims, override)


def read_points(path: Path) -> pd.DataFrame:
    """The reference CSV; a `source` of 'same' repeats the row above's."""
    points = pd.read_csv(path, dtype=str, keep_default_na=False)
    points["latency_ms"] = points.latency_ms.astype(float)
    points["source"] = points.source.replace("same", pd.NA).ffill()
    return points


def stock_over_prediction(points: pd.DataFrame) -> tuple[float, list[float]]:
    """Geometric mean of stock-TFLite measured / nn-Meter predicted latency over the paired A76 rows."""
    stock = points[points.runtime.str.contains("stock build")]
    ratios = []
    for _, row in stock.iterrows():
        predicted = float(re.search(r"prediction ~?([\d.]+)", row.notes).group(1))
        ratios.append(float(row.latency_ms) / predicted)
    return float(np.exp(np.mean(np.log(ratios)))), ratios


def select_a76(points: pd.DataFrame) -> list[FitPoint]:
    pixel = "Pixel 4 (SD855) CPU"
    measured = [
        _point(_row(points, pixel, m, "stock build"), 1.0)
        for m in ("nn-Meter mobilenetv1_0", "nn-Meter mobilenetv2_0", "nn-Meter mnasnet_0", "nn-Meter resnet18_0")
    ]
    ratio, _ = stock_over_prediction(points)
    nn_meter = "Pixel 4 Cortex-A76 CPU"
    predicted = []
    for model in ("MobileNetV3-Large", "squeezenet", "googlenet", "vgg16", "shufflenet_v2", "alexnet"):
        row = _row(points, nn_meter, model)
        predicted.append(
            _point(
                row,
                PREDICTION_WEIGHT,
                ratio * float(row.latency_ms),
                f"; x {ratio:.3f} (stock/prediction) = target {ratio * float(row.latency_ms):.4g} ms",
            )
        )
    return measured + predicted


def select_myriad(points: pd.DataFrame) -> list[FitPoint]:
    ncs2 = "Myriad X VPU (NCS2)"
    measured = [_point(_row(points, "NCS2 (Myriad X) on RPi4", "SqueezeNet"), 1.0)]
    predicted = [
        _point(_row(points, ncs2, m), PREDICTION_WEIGHT)
        for m in (
            "MobileNetV2 1.0",
            "ResNet-18",
            "MobileNetV3-Large",
            "squeezenet",
            "googlenet",
            "vgg16",
            "shufflenet_v2",
            "mnasnet",
            "alexnet",
        )
    ]
    return measured + predicted


#: PyTorch eager FP32 over TensorRT latency at batch 1 on an A100 (about 10x)
EAGER_OVER_TENSORRT = 10.0


def select_a100(points: pd.DataFrame, ratio: float = EAGER_OVER_TENSORRT) -> list[FitPoint]:
    """ResNet-50 eager FP32 targets derived from the MLPerf TensorRT single-stream points (no eager measurement)."""
    selected = []
    for version in ("v2.0", "v1.1"):
        row = _row(points, "A100-PCIe-80GB", "ResNet-50 v1.5", version)
        target = ratio * float(row.latency_ms)
        note = (
            f"; DERIVED target, not a measurement: ResNet-50 v1.5 eager FP32 = {ratio:g} x {row.latency_ms:g} ms "
            f"= {target:.4g} ms per DESIGN.md section 5's ~10x eager-FP32/TensorRT ratio at batch 1"
        )
        selected.append(_point(row, 1.0, target, note, network="ResNet-50-eager"))
    return selected


EFF_BOUNDS = (0.005, 1.0)
_R50_KERNELS = Counter(p.kind for p in NETWORKS["ResNet-50-eager"]())
_BLOCK_KERNELS = len(decompose(OpSpec("quadra_block", 56, 56, 96, 96, 3, 2), eager=True))

RECIPES = [
    Recipe(
        name="cortex-a76",
        aliases=["cpu"],
        backend="tflite",
        backend_version="2.1 (stock build)",
        precision="fp32",
        threads=1,
        method=(
            "ESTIMATED by the operator cost model (quadnas/latency/estimate/model.py, "
            "scripts/build_estimated_tables.py). "
            "Runtime assumed: stock TensorFlow Lite 2.1, FP32, 1 thread on a Pixel 4 Cortex-A76 big core "
            "(2.42 GHz, taskset 70). Peak 38.7 GFLOP/s (2 x 128-bit FMA/cycle), 34.1 GB/s LPDDR4X (nominal). "
            "Fitted: dense/pointwise/depthwise efficiency, bandwidth efficiency, per-op overhead "
            "(patchify tied to dense, linear to pointwise, vector ops fixed at 25% of peak). Points: the four "
            "stock-TFLite 1-thread measurements (weight 1) and nn-Meter predictions for six more networks "
            "(weight 0.3) scaled by the measured stock/prediction ratio (the predictor models nn-Meter's own, "
            "slower benchmark tool). Not used: 4-thread TFLite and ncnn FP16 rows (other threads/runtime), "
            "networks without a layer list (Inception-v3, DenseNet-161, ResNeXt-50)."
        ),
        extra={
            "litert": {
                "assumes": "TensorFlow Lite 2.1 (stock build), LiteRT's predecessor, as nn-Meter's "
                "benchmark_model ran it",
                "delegate": "none: TFLite 2.1's built-in CPU kernels (XNNPACK, LiteRT's default CPU delegate in "
                "ai-edge-litert 2.x, was opt-in then)",
                "replace_with": "quadnas profile --backend litert on the device (or its kit: profile kit --backend "
                "litert), or quadnas profile --adapt cpu --backend litert --networks 10 there",
            }
        },
        prior=DeviceModel(
            peak_gflops=38.72,
            bandwidth_gbs=34.1,
            bytes_per_element=4,
            eff={"dense": 0.5, "pointwise": 0.5, "depthwise": 0.2, "patchify": 0.5, "linear": 0.5, "vector": 0.25},
            eff_bw=0.4,
            overhead_us=10.0,
        ),
        free={
            "eff.dense": EFF_BOUNDS,
            "eff.pointwise": EFF_BOUNDS,
            "eff.depthwise": EFF_BOUNDS,
            "eff_bw": (0.02, 1.0),
            "overhead_us": (0.1, 1000.0),
        },
        ties={"patchify": "dense", "linear": "pointwise"},
        select=select_a76,
    ),
    Recipe(
        name="myriad-x",
        aliases=["vpu"],
        backend="openvino",
        backend_version="2019 R2 - 2021.2 (MYRIAD plugin)",
        precision="fp16",
        threads=None,
        method=(
            "ESTIMATED by the operator cost model (quadnas/latency/estimate/model.py, "
            "scripts/build_estimated_tables.py). "
            "Runtime assumed: OpenVINO MYRIAD plugin, FP16, synchronous batch-1 inference on a Neural Compute "
            "Stick 2 (Myriad X). Peak 1 TFLOP/s FP16 and 12.8 GB/s (nominal; the fitted efficiencies absorb "
            "both). Fitted: dense/pointwise/depthwise and vector-op efficiency, bandwidth efficiency, per-op "
            "overhead (patchify tied to dense, linear to pointwise). Points: the SqueezeNet measurement "
            "(11.3 ms, anecdotal, weight 1) and nn-Meter myriadvpu_openvino2019r2 predictions for nine networks "
            "(weight 0.3; that predictor puts 83.4% of models within +-10%). Not used: networks without a layer "
            "list (Inception-v3, DenseNet-161, ResNeXt-50)."
        ),
        prior=DeviceModel(
            peak_gflops=1000.0,
            bandwidth_gbs=12.8,
            bytes_per_element=2,
            eff={"dense": 0.2, "pointwise": 0.2, "depthwise": 0.05, "patchify": 0.2, "linear": 0.2, "vector": 0.02},
            eff_bw=0.5,
            overhead_us=50.0,
        ),
        free={
            "eff.dense": EFF_BOUNDS,
            "eff.pointwise": EFF_BOUNDS,
            "eff.depthwise": (0.0005, 1.0),
            "eff.vector": (0.0005, 1.0),
            "eff_bw": (0.02, 1.0),
            "overhead_us": (0.1, 2000.0),
        },
        ties={"patchify": "dense", "linear": "pointwise"},
        select=select_myriad,
    ),
    Recipe(
        name="a100",
        aliases=["gpu"],
        backend="torch",
        backend_version="2.x eager, CUDA + cuDNN",
        precision="fp32",
        threads=None,
        method=(
            "ESTIMATED by the operator cost model (quadnas/latency/estimate/model.py, "
            "scripts/build_estimated_tables.py). "
            "Runtime assumed: PyTorch eager, FP32 weights and activations, batch 1, eval mode, on an "
            "A100-PCIe-80GB; no torch.compile, CUDA graphs or TensorRT. Every primitive runs as its own "
            "kernel(s), nothing fused (decompose with eager=True): each conv a cuDNN kernel plus a separate "
            "bias-add kernel where it has a bias; LayerNorm2d one layer_norm kernel (its permutes are views, and "
            "activations are channels_last after the stem, so only the stem's LayerNorm2d copies its input "
            "first); the downsample's 2x2 weight reordered to NHWC on every call; GELU, every multiply and add, "
            f"the mean pool, the head LayerNorm and the linear one kernel each: {_BLOCK_KERNELS} kernels per "
            "QuadraBlock. "
            "Compute: convs at TF32 (PyTorch's default torch.backends.cudnn.allow_tf32 = True; 156 TFLOP/s "
            "dense), the linear layer at FP32 (matmul TF32 is off by default), element-wise ops on the FP32 "
            "CUDA cores (19.5 TFLOP/s); 1935 GB/s HBM (nominal). Efficiencies fixed, as fractions of the "
            "156 TFLOP/s peak: dense/pointwise/patchify conv 0.2, depthwise 0.03 (CUDA cores), linear and "
            "vector 0.0625 (half the FP32 peak); bandwidth 50%. Fitted: the per-kernel overhead (Python, "
            "dispatch and launch; it dominates at these sizes) to DERIVED targets, not measurements: "
            f"ResNet-50 v1.5 eager FP32 = {EAGER_OVER_TENSORRT:g} x the MLPerf TensorRT single-stream INT8 "
            "latencies (see sources) per DESIGN.md section 5's ~10x eager/TensorRT ratio at batch 1 - the reference "
            "set has no eager A100 measurement - with ResNet-50 in eager form ("
            + ", ".join(f"{n} {kind}" for kind, n in _R50_KERNELS.items())
            + f": {sum(_R50_KERNELS.values())} "
            "kernels). The fit error of two targets from one network and one "
            "ratio measures nothing, so the calibration states none; the overhead, and with it every row, "
            "scales with the assumed ratio. Not used: SSD-MobileNet-v1 (its eager form needs torchvision NMS "
            "and Python post-processing), the Triton + ONNX Runtime TensorRT EP point (client/server path)."
        ),
        prior=DeviceModel(
            peak_gflops=156_000.0,
            bandwidth_gbs=1935.0,
            bytes_per_element=4,
            eff={
                "dense": 0.2,
                "pointwise": 0.2,
                "depthwise": 0.03,
                "patchify": 0.2,
                "linear": 0.0625,
                "vector": 0.0625,
            },
            eff_bw=0.5,
            overhead_us=20.0,
            eager=True,
        ),
        free={"overhead_us": (0.1, 1000.0)},
        select=select_a100,
        states_fit_error=False,
    ),
]
#: the a100 prior with TF32 off for convs too: FP32 CUDA cores (19.5 TFLOP/s), half of that peak for
#: dense/pointwise/patchify/linear/vector, a quarter for depthwise (the same absolute rate as the TF32 prior)
A100_TF32_OFF = {
    "peak_gflops": 19_500.0,
    "eff.dense": 0.5,
    "eff.pointwise": 0.5,
    "eff.patchify": 0.5,
    "eff.depthwise": 0.24,
    "eff.linear": 0.5,
    "eff.vector": 0.5,
}


# ---- building -------------------------------------------------------------------
def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def _evaluate(device: DeviceModel, points: tuple[FitPoint, ...]) -> FitResult:
    return FitResult(device, points, tuple(p.model_ms(device) for p in points))


def rounded_fit(recipe: Recipe, selected: list[FitPoint], existing: DeviceModel | None = None) -> FitResult:
    """Fit, then round the fitted parameters so the header reproduces every number.

    `existing` (the cost model of the table on disk) is returned instead where it is the same fit
    (`same_fit`): the fresh fit's last digits, and any parameter the points do not pin, vary by host.
    """
    result = fit(recipe.prior, selected, recipe.free, recipe.ties)
    values = {name: _round(result.device.get(name)) for name in recipe.free}
    fresh = _evaluate(recipe.prior.with_params(values, recipe.ties), result.points)
    if existing is not None and same_fit(recipe, existing, fresh):
        return _evaluate(existing, result.points)
    return fresh


def same_fit(recipe: Recipe, existing: DeviceModel, fresh: FitResult) -> bool:
    """Whether `existing` is what this recipe fits: the recipe's prior with rounded fitted parameters
    inside their bounds, fitting the points as well as `fresh` (objectives within COST_RTOL)."""
    try:
        values = {name: existing.get(name) for name in recipe.free}
    except (AttributeError, KeyError):
        return False
    if recipe.prior.with_params(values, recipe.ties).header() != existing.header():
        return False  # another prior, other ties, or other fixed parameters
    if any(v != _round(v) or not recipe.free[n][0] <= v <= recipe.free[n][1] for n, v in values.items()):
        return False
    kept = _evaluate(existing, fresh.points)
    return abs(kept.cost - fresh.cost) <= COST_RTOL * max(kept.cost, fresh.cost)


#: a number written in a table: not part of a word (k5e4, R2, a hex fingerprint)
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _last_digit(token: str) -> float:
    """One unit in the last digit written: '12.46' -> 0.01, '1.5e-05' -> 1e-06, '300' -> 1."""
    mantissa, _, exponent = token.lower().partition("e")
    return 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def _same_line(a: str, b: str) -> bool:
    if _NUMBER.split(a) != _NUMBER.split(b):
        return False  # the text between the numbers
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        if x == y:
            continue
        if not any(c in x + y for c in ".eE"):
            return False  # integers (shapes, counts, years) exactly
        if abs(float(x) - float(y)) > min(_last_digit(x), _last_digit(y)) * (1 + 1e-9):
            return False
    return True


def text_differences(old: str, new: str) -> list[str]:
    """Where `new` differs from `old` by more than host floating point explains: text and integers
    exactly, other numbers by at most one unit in their last written digit (a flipped rounding)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    if len(old_lines) != len(new_lines):
        return [f"{len(old_lines)} lines -> {len(new_lines)}"]
    return [
        f"line {i}: {_around(a, b)}"
        for i, (a, b) in enumerate(zip(old_lines, new_lines), 1)
        if a != b and not _same_line(a, b)
    ]


def _around(a: str, b: str) -> str:
    """'...old...' -> '...new...' around the first character where two lines differ."""
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, first - 40)
    return f"{a[start : first + 40]!r} -> {b[start : first + 40]!r}"


#: How the rows of QuadEnhanced blocks are estimated, and what is known of their error.
ENHANCER_ROWS = (
    "rows with enhance > 0 (QuadEnhanced 1x1 convs) are the fitted model's price of the enhancer's primitives "
    "(per neighbour a roll copy, a multiply and an add; then a multiply and the bias add, on each 1x1 conv's "
    "output); no published latency of a QuadEnhancer exists for this device, so their error here is unmeasured. "
    "docs/benchmarks.md compares the model's enhancer share of a block with one measured on an x86 host."
)


def build_table(recipe: Recipe, result: FitResult, space: SearchSpace, created: datetime) -> LatencyTable:
    residuals = result.residuals_pct
    sources = [
        f"{p.description}; weight {p.weight:g} -> model {m:.4g} ms ({r:+.1f}%)"
        for p, m, r in zip(result.points, result.predicted_ms, residuals)
    ]
    fit_points = [
        FittedNetwork(
            network=p.network,
            resolution=p.resolution,
            target_ms=round(p.target_ms, 6),
            weight=p.weight,
            model_ms=_round(m),
            residual_pct=round(float(r), 2),
            device_override=p.device_override or {},
        )
        for p, m, r in zip(result.points, result.predicted_ms, residuals)
    ]
    meta = TableMeta(
        device=recipe.name,
        aliases=recipe.aliases,
        backend=recipe.backend,
        backend_version=recipe.backend_version,
        precision=recipe.precision,
        batch=1,
        threads=recipe.threads,
        resolution=space.config.resolution,
        space=space.name,
        space_fingerprint=space.fingerprint(),
        created=created,
        quadnas_version=quadnas.__version__,
        provenance="estimated",
        method=recipe.method,
        calibration=Calibration(
            a=1.0,
            b_ms=0.0,
            networks=len(result.points),
            **(
                {"mape_pct": round(result.mape_pct, 2), "max_err_pct": round(result.max_err_pct, 2)}
                if recipe.states_fit_error
                else {}
            ),
        ),
        sources=sources,
        estimate=Estimate(cost_model=result.device.header(), fit_points=fit_points),
        **({"enhancer_rows": ENHANCER_ROWS} if space.enhances else {}),
        **recipe.extra,
    )
    table = LatencyTable(meta)
    stem_patch = space.config.stem_patch
    rows = []
    for spec in space.all_op_specs():
        ms = result.device.spec_ms(spec, stem_patch)
        rows.append({**spec.as_row(), "latency_ms": ms, "p10_ms": ms, "p90_ms": ms, "runs": 0})
    return table.with_rows(rows)


def mbconv(size: int, width: int, kernel: int, expansion: int = 6) -> list[Prim]:
    hidden = width * expansion
    return [
        Prim("conv", size, size, width, hidden),
        Prim("conv", size, size, hidden, hidden, kernel, 1, groups=hidden),
        Prim("conv", size, size, hidden, width),
        Prim("add", size, size, width, width),
    ]


def depthwise_check(device: DeviceModel) -> list[dict]:
    rows = []
    for size, (width, k5, k7) in DEPTHWISE_FACTS.items():
        base = device.prims_ms(mbconv(size, width, 3))
        rows.append(
            {
                "size": size,
                "width": width,
                "k5/k3 model": device.prims_ms(mbconv(size, width, 5)) / base,
                "k5/k3 measured": k5,
                "k7/k3 model": device.prims_ms(mbconv(size, width, 7)) / base,
                "k7/k3 measured": k7,
            }
        )
    return rows


def existing_created(path: Path) -> datetime | None:
    try:
        return LatencyTable.read_meta(path).created
    except QuadnasError:
        return None


def existing_fit(path: Path) -> DeviceModel | None:
    """The cost model in the header of the table at `path`, if it has a readable one."""
    try:
        estimate = LatencyTable.read_meta(path).estimate
        return estimate.device_model() if estimate is not None else None
    except (QuadnasError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def report(recipe: Recipe, result: FitResult, table: LatencyTable, space: SearchSpace, points: pd.DataFrame) -> str:
    lines = [
        f"### {recipe.name} ({', '.join(recipe.aliases)})",
        "",
        "| network | input | target ms | weight | model ms | residual |",
        "|---|---|---|---|---|---|",
    ]
    for p, m, r in zip(result.points, result.predicted_ms, result.residuals_pct):
        lines.append(f"| {p.network} | {p.resolution} | {p.target_ms:.4g} | {p.weight:g} | {m:.4g} | {r:+.1f}% |")
    measured = [abs(r) for p, r in zip(result.points, result.residuals_pct) if p.weight == 1.0]
    lines += [
        "",
        f"fit error: mean |residual| {result.mape_pct:.1f}%, max {result.max_err_pct:.1f}% "
        f"(weight-1 points: mean {np.mean(measured):.1f}%, max {np.max(measured):.1f}%)",
        "",
        "fitted parameters: " + ", ".join(f"{n} = {result.device.get(n):g}" for n in recipe.free),
    ]
    if not recipe.states_fit_error:
        lines += ["", "the calibration states no expected error: this fit error measures nothing (see method)"]
    if recipe.name == "cortex-a76":
        lines += [
            "",
            "depthwise scaling check (MBConv block, expansion 6, stride 1):",
            "",
            "| size | width | k5/k3 model | measured | k7/k3 model | measured |",
            "|---|---|---|---|---|---|",
        ]
        for r in depthwise_check(result.device):
            lines.append(
                f"| {r['size']} | {r['width']} | {r['k5/k3 model']:.2f} | {r['k5/k3 measured']:.2f} | "
                f"{r['k7/k3 model']:.2f} | {r['k7/k3 measured']:.2f} |"
            )
    lines += [
        "",
        "quadra_block k5/k3, k7/k3 (e=4) per stage: "
        + "; ".join(
            f"{s.height}x{s.width}x{s.cin}: {ratio(table, s, 5):.2f}, {ratio(table, s, 7):.2f}"
            for s in space.all_op_specs()
            if s.op == "quadra_block" and s.kernel == 3 and s.expansion == 4
        ),
    ]
    predictor = LatencyPredictor(table, space)
    fast, fast_ms = predictor.fastest()
    slow, slow_ms = predictor.slowest()
    budget = BUDGETS_MS[recipe.name]
    inside = fast_ms < budget < slow_ms
    random_ms = predictor.predict_many(
        np.random.default_rng(0).integers(0, len(space.choices), (2000, space.num_blocks))
    )
    lines += [
        "",
        f"range on {space.name}: fastest {fast_ms:.4g} ms ({fast}), slowest {slow_ms:.4g} ms ({slow}); "
        f"budget {budget:g} ms = {100 * budget / slow_ms:.0f}% of slowest, "
        f"{'inside' if inside else 'OUTSIDE'} the range",
        "",
        f"2000 uniformly random archs: median {np.median(random_ms):.4g} ms "
        f"(10-90%: {np.percentile(random_ms, 10):.4g}-{np.percentile(random_ms, 90):.4g} ms); "
        f"{100 * np.mean(random_ms <= budget):.0f}% within the budget; an arch within it has at most "
        f"{most_blocks_within(predictor, budget)} of {space.num_blocks} blocks non-identity",
        "",
    ]
    if recipe.prior.eager:
        lines += eager_report(recipe, result, space, points)
    return "\n".join(lines)


def most_blocks_within(predictor: LatencyPredictor, budget_ms: float) -> int:
    """The most non-identity blocks an arch can have and still meet the budget (cheapest choices)."""
    real = [j for j, c in enumerate(predictor.space.choices) if not c.is_identity]
    cheapest = np.sort(predictor.matrix[:, real].min(axis=1))
    totals = predictor.calibration.apply(predictor.fixed_ms + np.concatenate([[0.0], np.cumsum(cheapest)]))
    return int(np.sum(totals <= budget_ms)) - 1


def kernels(device: DeviceModel, space: SearchSpace, arch: Arch) -> int:
    """Kernels an arch launches (unfused primitives)."""
    return sum(
        p.kind not in device.fused
        for s in space.op_specs(arch)
        for p in decompose(s, space.config.stem_patch, device.eager)
    )


def eager_report(recipe: Recipe, result: FitResult, space: SearchSpace, points: pd.DataFrame) -> list[str]:
    """Kernel counts, and how the range and the budget's place in it move with the a100 assumptions (refitted)."""
    device, budget = result.device, BUDGETS_MS[recipe.name]
    block = next(s for s in space.all_op_specs() if s.op == "quadra_block")
    lines = [
        f"kernels launched: ResNet-50-eager {len(NETWORKS['ResNet-50-eager']())}; a QuadraBlock "
        f"{len(decompose(block, eager=True))}; {space.name} fastest {kernels(device, space, space.smallest())}, "
        f"slowest {kernels(device, space, space.largest())}",
        "",
        "sensitivity (each row refitted to its own targets):",
        "",
        "| assumption | overhead_us | fastest ms | slowest ms | budget share of slowest |",
        "|---|---|---|---|---|",
    ]
    variants = [(f"eager/TensorRT ratio {r:g}x", recipe, r) for r in (5, 7, EAGER_OVER_TENSORRT, 14, 20)]
    variants.append(
        (
            f"ratio {EAGER_OVER_TENSORRT:g}x, TF32 off (convs on FP32 CUDA cores)",
            replace(recipe, prior=recipe.prior.with_params(A100_TF32_OFF)),
            EAGER_OVER_TENSORRT,
        )
    )
    created = datetime(2000, 1, 1, tzinfo=timezone.utc)
    for label, variant, r in variants:
        fitted = rounded_fit(variant, select_a100(points, r))
        predictor = LatencyPredictor(build_table(variant, fitted, space, created), space)
        fast_ms, slow_ms = predictor.fastest()[1], predictor.slowest()[1]
        lines.append(
            f"| {label} | {fitted.device.overhead_us:g} | {fast_ms:.4g} | {slow_ms:.4g} | "
            f"{100 * budget / slow_ms:.0f}%{'' if fast_ms < budget < slow_ms else ' (OUTSIDE)'} |"
        )
    return lines + [""]


def ratio(table: LatencyTable, spec, kernel: int) -> float:
    """Latency of `spec` with another kernel, relative to `spec`."""
    return float(table.lookup([replace(spec, kernel=kernel)])[0] / table.lookup([spec])[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=Path, default=POINTS_CSV, help="published latency points (CSV)")
    parser.add_argument("--out", type=Path, default=SHIPPED_TABLES_DIR, help="where the tables go")
    parser.add_argument(
        "--space",
        default=None,
        help="search space whose op specs get rows (default quadranet-t-qe, a superset of quadranet-t)",
    )
    parser.add_argument(
        "--created",
        type=datetime.fromisoformat,
        default=None,
        help="ISO date-time for the header (default: keep the existing file's, else now)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table would change")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="take the fresh fit's rounded parameters even where the existing table's fit as well",
    )
    args = parser.parse_args(argv)

    points = read_points(args.points)
    space = SearchSpace.load(args.space or "quadranet-t-qe")
    stock_ratio, ratios = stock_over_prediction(points)
    print(
        f"A76 stock-TFLite / nn-Meter-prediction ratios: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"geometric mean {stock_ratio:.3f}\n"
    )
    changed = []
    for recipe in RECIPES:
        path = args.out / f"{recipe.name}.csv"
        created = args.created or existing_created(path) or datetime.now(timezone.utc).replace(microsecond=0)
        result = rounded_fit(recipe, recipe.select(points), None if args.refit else existing_fit(path))
        table = build_table(recipe, result, space, created)
        print(report(recipe, result, table, space, points))
        old, new = (path.read_text() if path.exists() else None), table.to_text()
        differences = [] if old == new else ["a new file"] if old is None else text_differences(old, new)
        if differences:
            changed.append(path)
            if args.check:
                print(
                    f"{path}:\n  "
                    + "\n  ".join(differences[:5] + [f"... {len(differences) - 5} more"] * (len(differences) > 5)),
                    file=sys.stderr,
                )
            else:
                table.write(path)
    if args.check and changed:
        print(f"would change: {', '.join(map(str, changed))}", file=sys.stderr)
        return 1
    print("changed: " + (", ".join(map(str, changed)) if changed else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
