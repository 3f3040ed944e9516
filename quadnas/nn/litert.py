"""The one torch -> LiteRT (.tflite) writer: the profiler's op graphs, the kit's files and the exported
networks come from it alike, as the ONNX ones come from `nn.onnx`.

- FP32: `litert_torch.convert` (torch.export, then the LiteRT converter; no TensorFlow). An op that works
  inside a network on channels-last activations is written with channels-last input and output
  (`litert_torch.to_channel_last_io`), so that its file holds no layout transposes a network would not run.
- INT8: the FP32 file quantized by the LiteRT quantizer (`ai_edge_quantizer`, recipe `static_wi8_ai8`: INT8
  weights and activations, INT8 input and output), calibrated on the inputs given.
- Metadata: a `name -> text` record stored in the file's own `metadata` table (buffer named
  METADATA_NAME, UTF-8 JSON), read back by `read_metadata` with the flatbuffer schema that ships with
  the interpreter.

The converter (`quadnas[litert]`: litert-torch, ai-edge-quantizer) is imported on use; the interpreter
(`ai-edge-litert`) alone runs the files.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from quadnas.errors import QuadnasError
from quadnas.portable.native_stderr import known_lines_dropped

LITERT_HINT = "pip install 'quadnas[litert]'"
METADATA_NAME = "quadnas_model_info"
SIGNATURE = "serving_default"
QUANTIZATION_RECIPE = "static_wi8_ai8"
_QUIET_ENV = {"LITERT_TORCH_SHOW_PROGRESS": "n", "TF_CPP_MIN_LOG_LEVEL": "3"}


def import_litert(package: str) -> ModuleType:
    """`litert_torch`, `ai_edge_quantizer` or `ai_edge_litert`, or a QuadnasError naming the install command."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise QuadnasError(f"LiteRT files need the {package} package, which is not installed: {LITERT_HINT}") from None


def converter_version() -> str:
    """'litert-torch X, ai-edge-quantizer Y' of the installed converter stack."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ("litert-torch", "ai-edge-quantizer"):
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            found.append(f"{dist} (not installed)")
    return ", ".join(found)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter's own progress lines, logs, native log lines and deprecation notices off while it runs;
    the environment as it was after."""
    saved = {key: os.environ.get(key) for key in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    loggers = [logging.getLogger(name) for name in ("absl", "jax", "torchao", "litert_torch", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with known_lines_dropped(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=r".*experimental_preserve_all_tensors")  # the quantizer's
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """An NCHW array as NHWC (what a channels-last file takes)."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1))) if x.ndim == 4 else x


def write_tflite(
    module: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    *,
    channels_last_io: bool = False,
    calibration: Sequence[np.ndarray] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write `module` (in eval mode) as a .tflite file for inputs of `input_shape` (NCHW, batch fixed).

    `channels_last_io`: the file takes NHWC input and gives a 4-d output as NHWC. `calibration` (NCHW
    inputs of `input_shape`): quantize the file to INT8 on them (`quantize_tflite`). `metadata`: stored in
    the file (`add_metadata`).
    """
    with _quiet():  # the C++ logging level is read as the converter loads
        litert_torch = import_litert("litert_torch")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    example = torch.zeros(input_shape)
    if channels_last_io:
        with torch.no_grad():
            four_d_output = module(example).dim() == 4
        module = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if four_d_output else []).eval()
        example = example.permute(0, 2, 3, 1).contiguous()
    with tempfile.TemporaryDirectory(prefix="quadnas-tflite-") as tmp:
        fp32 = Path(tmp) / "fp32.tflite" if calibration is not None else path
        with _quiet(), torch.no_grad():
            litert_torch.convert(module, (example,)).export(str(fp32))
        if calibration is not None:
            inputs = [to_channels_last(x) if channels_last_io else x for x in calibration]
            quantize_tflite(fp32, path, inputs)
    if metadata:
        add_metadata(path, metadata)
    return path


def quantize_tflite(fp32: Path, out: Path, calibration: Sequence[np.ndarray]) -> Path:
    """`fp32` quantized to INT8 by the LiteRT quantizer (`static_wi8_ai8`), calibrated on `calibration`
    (inputs as the file takes them), written to `out`."""
    aeq = import_litert("ai_edge_quantizer")
    if len(calibration) == 0:
        raise QuadnasError(f"INT8 quantization of {fp32.name} needs calibration inputs, and none were given")
    with _quiet():
        quantizer = aeq.quantizer.Quantizer(str(fp32), getattr(aeq.recipe, QUANTIZATION_RECIPE)())
        name = _input_name(fp32)
        result = quantizer.calibrate({SIGNATURE: [{name: x} for x in calibration]}, num_threads=1)
        quantized = quantizer.quantize(result, enable_progress_bar=False, enable_progress_report=False)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(bytes(quantized.quantized_model))
    return out


def open_interpreter(path: Path, threads: int = 1) -> Any:  # ai_edge_litert's Interpreter (untyped)
    """`path` in LiteRT's interpreter (XNNPACK on), tensors allocated; its native log lines kept off stderr."""
    interpreter_module = import_litert("ai_edge_litert.interpreter")
    with known_lines_dropped():
        interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    return interpreter


def _input_name(path: Path) -> str:
    """The name of the one input of `path`'s serving signature."""
    inputs: list[str] = open_interpreter(path).get_signature_list()[SIGNATURE]["inputs"]
    return inputs[0]


def _schema() -> Any:  # ai_edge_litert.schema_py_generated (untyped)
    return import_litert("ai_edge_litert.schema_py_generated")


def add_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Store `metadata` (JSON, UTF-8) in `path`'s metadata table under METADATA_NAME, replacing an older one."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    model.metadata = [m for m in (model.metadata or []) if _text(m.name) != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(dict(metadata), sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(path.stat().st_size + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))


def read_metadata(path: Path) -> dict[str, str]:
    """The record `add_metadata` stored in `path` ({} if none)."""
    schema = _schema()
    model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == METADATA_NAME:
            found: dict[str, str] = json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
            return found
    return {}


def _text(name: bytes | str | None) -> str:
    return name.decode() if isinstance(name, bytes) else (name or "")
