"""LiteRT (.tflite) files: the writer `formats.write_unchecked` calls for format litert, the INT8 quantizer
`quantize.write_int8` calls, and the runner that reads either back in LiteRT's interpreter.

A .tflite file has a fixed batch of 1 (what on-device apps feed), NCHW float32 input and logits out; the
FP32 file is converted by litert-torch (`quadnas.nn.litert`), the INT8 one quantized from it by the LiteRT
quantizer and takes INT8 input and gives INT8 logits (scale and zero point in the file: the runner applies
them). `sidecar.model_info` is stored in the file's metadata table (`nn.litert.read_metadata` reads it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.nn import QuadraNet
from quadnas.nn.litert import (
    QUANTIZATION_RECIPE,
    add_metadata,
    converter_version,
    import_litert,
    open_interpreter,
    quantize_tflite,
    read_metadata,
    write_tflite,
)

Runner = Callable[[np.ndarray], np.ndarray]
BATCH = 1  # the batch a .tflite file is written for


class TfliteRunner:
    """A .tflite file in LiteRT's interpreter (XNNPACK on, 1 thread): any batch of NCHW float32 images in, one
    image a call, float32 logits out (an INT8 file's input quantized and output dequantized by its own scales)."""

    def __init__(self, path: Path):
        self.interpreter = open_interpreter(path)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self._one(x[i : i + 1]) for i in range(len(x))])

    def _one(self, x: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], _quantized(x, self.input))
        self.interpreter.invoke()
        return _dequantized(self.interpreter.get_tensor(self.output["index"]), self.output)


def _quantized(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    quantized: np.ndarray = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
    return quantized


def _dequantized(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    logits: np.ndarray = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
    return logits


def runtime_text(int8: bool = False) -> str:
    """'LiteRT 2.3.0 (XNNPACK; litert-torch 0.10.0, ai-edge-quantizer 0.10.0)', for results and cards."""
    version = import_litert("ai_edge_litert").__version__
    how = f", INT8 by the LiteRT quantizer ({QUANTIZATION_RECIPE})" if int8 else ""
    return f"LiteRT {version} (XNNPACK{how}; {converter_version()})"


def write_litert(
    model: QuadraNet, shape: tuple[int, ...], out: Path, metadata: dict[str, str]
) -> tuple[list[Path], str, Runner]:
    """`model` as an FP32 .tflite file at `out` for one image of `shape` (C, H, W), `metadata` stored in it:
    (files, runtime, runner)."""
    write_tflite(model, (BATCH, *shape), out, metadata={**metadata, "quadnas_batch": str(BATCH)})
    return [out], runtime_text(), TfliteRunner(out)


def quantize_litert(fp32: Path, out: Path, calibration: Sequence[np.ndarray]) -> tuple[list[Path], str, Runner]:
    """The FP32 file `fp32` quantized to INT8 at `out` on `calibration` (batch-1 NCHW images), its metadata
    carried over: (files, runtime, runner)."""
    quantize_tflite(fp32, out, calibration)
    add_metadata(out, {**read_metadata(fp32), "quadnas_precision": "int8"})
    return [out], runtime_text(int8=True), TfliteRunner(out)
