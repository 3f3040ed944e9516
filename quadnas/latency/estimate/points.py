"""The published whole-network latencies the estimated tables are fitted to, and which of them each device takes.

`read_points` reads `latency_tables/reference/published_latency_points.csv` (each row names its
source and licence); `select_a76`, `select_myriad` and `select_a100` turn the rows of one device
into fit points (`model.FitPoint`) with their weights and their source text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quadnas.errors import QuadnasError
from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.latency.estimate.model import FitPoint
from quadnas.latency.estimate.reference_models import NETWORKS

POINTS_CSV = SHIPPED_TABLES_DIR / "reference" / "published_latency_points.csv"
#: the weight of a predicted (not measured) latency; measured points weigh 1
PREDICTION_WEIGHT = 0.3

# the CSV's model names -> the reference network (`reference_models.NETWORKS`) each is fitted as
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


def _row(points: pd.DataFrame, device: str, model: str, runtime: str = "") -> pd.Series:
    """The one reference row of `model` on `device` whose runtime contains `runtime`."""
    hit = points[
        (points.device == device) & (points.model == model) & points.runtime.str.contains(runtime, regex=False)
    ]
    if len(hit) != 1:
        raise QuadnasError(
            f"expected one reference row for {device} / {model} / {runtime!r}, found {len(hit)}: "
            "give a points file with exactly one such row (the shipped one has it)"
        )
    return hit.iloc[0]


def _point(
    row: pd.Series,
    weight: float,
    target: float | None = None,
    note: str = "",
    override: dict[str, Any] | None = None,
    network: str | None = None,
) -> FitPoint:
    """A fit point from a reference row: its target (the row's latency unless given) and its source text."""
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
        found = re.search(r"prediction ~?([\d.]+)", row.notes)
        if found is None:
            raise QuadnasError(f"the stock-TFLite row of {row.model} names no nn-Meter prediction in its notes")
        predicted = float(found.group(1))
        ratios.append(float(row.latency_ms) / predicted)
    return float(np.exp(np.mean(np.log(ratios)))), ratios


def select_a76(points: pd.DataFrame) -> list[FitPoint]:
    """The Pixel 4 big core: stock-TFLite measurements, and nn-Meter predictions scaled to stock TFLite."""
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
    """The Neural Compute Stick 2: one SqueezeNet measurement, and nn-Meter's predictions."""
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
