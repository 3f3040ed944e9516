"""How each shipped estimated table is made: its device's prior cost model, what is fitted, the points, its header.

`RECIPES` holds one `Recipe` per shipped table (cortex-a76, myriad-x, a100); `build` fits and
writes them. The `method` texts go into the tables' headers as they are written here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quadnas.latency.estimate.model import DeviceModel, FitPoint, decompose
from quadnas.latency.estimate.points import EAGER_OVER_TENSORRT, select_a76, select_a100, select_myriad
from quadnas.latency.estimate.reference_models import NETWORKS
from quadnas.space import OpSpec


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


#: bounds of a fitted efficiency
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
