"""The file a backend times for a module: FP32 ONNX, or for INT8 tables that graph quantized the way
`quadnas export --precision int8` quantizes whole networks (`quadnas.nn.quantize`): static QDQ for
onnxruntime, NNCF (FakeQuantize, an IR) for OpenVINO. LiteRT times .tflite files from `quadnas.nn.litert`
(INT8: the LiteRT quantizer), an op that runs on channels-last activations with channels-last input and
output, as it runs inside a network.

An op's module sits inside a network, where its inputs are another op's outputs; alone it is
calibrated on CALIBRATION_INPUTS seeded standard-normal inputs of its input shape (the
calibration networks on random images alike). The values set the quantization scales, not the
graph's kind or size, so they do not change its latency.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from quadnas.latency.precision import INT8
from quadnas.nn.litert import QUANTIZATION_RECIPE, converter_version, write_tflite
from quadnas.nn.onnx import write_onnx
from quadnas.nn.quantize import quantize_onnx, quantize_openvino

CALIBRATION_INPUTS = 4
INPUT_NAME = "input"  # write_onnx's default


def calibration_inputs(shape: tuple[int, ...], n: int = CALIBRATION_INPUTS, seed: int = 0) -> list[np.ndarray]:
    """`n` seeded standard-normal inputs of `shape`."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape, dtype=np.float32) for _ in range(n)]


def model_suffix(backend: str, precision: str) -> str:
    """The suffix of the file `write_model` writes: .tflite for LiteRT, an IR (.xml) for OpenVINO INT8, else .onnx."""
    if backend == "litert":
        return ".tflite"
    return ".xml" if precision == INT8 and backend == "openvino" else ".onnx"


def write_model(
    module: nn.Module,
    input_shape: tuple[int, ...],
    out: Path,
    backend: str,
    precision: str,
    channels_last: bool = False,
) -> Path:
    """`module` as the file `backend` times at `precision`, at `out` (suffix `model_suffix`).

    `channels_last`: the module's input is a channels-last activation inside a network (only LiteRT's
    files see the layout: channels-last input and output)."""
    if backend == "litert":
        calibration = calibration_inputs(input_shape) if precision == INT8 else None
        return write_tflite(module, input_shape, out, channels_last_io=channels_last, calibration=calibration)
    if precision != INT8:
        return write_onnx(module, input_shape, out)
    fp32 = write_onnx(module, input_shape, out.with_name(f"{out.stem}.fp32.onnx"))
    calibration = calibration_inputs(input_shape)
    try:
        if backend == "openvino":
            return quantize_openvino(fp32, out, calibration, input_shape)
        return quantize_onnx(fp32, out, calibration, input_shape, INPUT_NAME)
    finally:
        fp32.unlink(missing_ok=True)


def model_files(path: Path) -> list[Path]:
    """`path` and, for an IR, its weights (.bin)."""
    return [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]


def quantization_text(backend: str) -> str:
    """How an INT8 table's graphs were quantized, for its `method`."""
    how = {
        "openvino": "by NNCF post-training quantization to an OpenVINO IR (FakeQuantize)",
        "litert": f"by the LiteRT quantizer (ai-edge-quantizer, recipe {QUANTIZATION_RECIPE}: INT8 weights, "
        "activations, input and output)",
    }.get(backend, "by onnxruntime static quantization to QDQ (QInt8 activations and per-channel weights)")
    return (
        f"quantized to INT8 {how} as `quadnas export --precision int8` quantizes networks, calibrated on "
        f"{CALIBRATION_INPUTS} seeded standard-normal inputs of the model's input shape"
    )


def writer_text(backend: str) -> str:
    """How each op spec's module became the file the backend times, for a table's `method`."""
    if backend == "litert":
        return (
            f"converted alone to .tflite by {converter_version()} (channels-last input and output for ops that "
            "run on channels-last activations)"
        )
    return "exported alone to ONNX opset 17 where the backend needs it"
