"""Post-training INT8 quantization of a model file: the one core that `quadnas export --precision int8`
(whole networks, calibrated on training images) and `quadnas profile --precision int8` (each op spec's
module and the calibration networks, calibrated on random inputs) share, so that a latency table times
the same kind of graph an export ships.

- onnxruntime: static QDQ quantization (`onnxruntime.quantization.quantize_static`, after
  `quant_pre_process`): QuantizeLinear/DequantizeLinear pairs around INT8 weights and activations,
  per-channel weights.
- OpenVINO: NNCF post-training quantization (`nncf.quantize`) of the model OpenVINO reads from the
  FP32 file: FakeQuantize nodes that the CPU plugin runs as INT8 kernels.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from quadnas.errors import QuadnasError

NNCF_HINT = "pip install nncf"
OPENVINO_HINT = "pip install 'quadnas[openvino]'"


def check_calibration(calibration: Sequence[np.ndarray], shape: Sequence[int], what: str) -> None:
    """A one-line error unless `calibration` holds at least one input, each of `shape`."""
    if len(calibration) == 0:
        raise QuadnasError(f"INT8 quantization of {what} needs calibration inputs, and none were given")
    wrong = next((tuple(x.shape) for x in calibration if tuple(x.shape) != tuple(shape)), None)
    if wrong is not None:
        raise QuadnasError(
            f"INT8 quantization of {what}: a calibration input has shape {wrong}, the model takes "
            f"{tuple(shape)}: calibrate on inputs of the model's shape"
        )


def quantize_onnx(
    fp32: Path, out: Path, calibration: Sequence[np.ndarray], input_shape: Sequence[int], input_name: str
) -> Path:
    """`fp32` (an ONNX file) quantized to INT8 QDQ at `out`, calibrated on `calibration` (inputs of
    `input_shape`, one a call); the calibration is checked first (`check_calibration`)."""
    check_calibration(calibration, input_shape, str(fp32))
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Inputs(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime is untyped here
        def __init__(self) -> None:
            self.inputs: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.inputs, None)
            return None if x is None else {input_name: x}

    prepared = out.with_name(f"{out.stem}.prepared.onnx")
    try:
        with _errors_only(logging.getLogger()):  # its quantizer notes (e.g. per-channel axes of 1-d weights)
            quant_pre_process(str(fp32), str(prepared))
            quantize_static(
                str(prepared),
                str(out),
                Inputs(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
            )
    finally:
        prepared.unlink(missing_ok=True)
    return out


def quantize_openvino(fp32: Path, out: Path, calibration: Sequence[np.ndarray], input_shape: Sequence[int]) -> Path:
    """`fp32` (ONNX or IR) quantized by NNCF to an INT8 IR at `out` (.xml, its .bin beside it), calibrated
    on `calibration` (inputs of `input_shape`); the calibration is checked first (`check_calibration`)."""
    check_calibration(calibration, input_shape, str(fp32))
    try:
        import nncf
    except ImportError:
        raise QuadnasError(f"INT8 for OpenVINO needs NNCF (not installed): {NNCF_HINT}") from None
    ov = import_openvino()
    model = ov.Core().read_model(str(fp32))
    # NNCF draws progress bars and logs notes on stdout, where `--json` writes its document
    with contextlib.redirect_stdout(io.StringIO()), _errors_only(logging.getLogger("nncf")):
        quantized = nncf.quantize(model, nncf.Dataset(list(calibration)), subset_size=len(calibration))
    ov.save_model(quantized, str(out))  # as `quadnas export` always wrote them (float constants left FP16)
    return out


@contextlib.contextmanager
def _errors_only(logger: logging.Logger) -> Iterator[None]:
    """`logger` passes only errors inside the block, and its own level again after it.

    A logger without handlers holds a `NullHandler` meanwhile: a library's module-level
    `logging.warning(...)` (onnxruntime's quantizer has them) would otherwise call
    `logging.basicConfig()` and leave the root logger printing every later warning on stderr.
    """
    level = logger.level
    guard = logging.NullHandler() if not logger.handlers else None
    logger.setLevel(logging.ERROR)
    if guard is not None:
        logger.addHandler(guard)
    try:
        yield
    finally:
        logger.setLevel(level)
        if guard is not None:
            logger.removeHandler(guard)


def nncf_version() -> str:
    """The installed NNCF's version."""
    import nncf

    return str(nncf.__version__)


def import_openvino() -> ModuleType:
    """The `openvino` module, or a QuadnasError naming the install command."""
    try:
        import openvino
    except ImportError:
        raise QuadnasError(f"OpenVINO needs the openvino package, which is not installed: {OPENVINO_HINT}") from None
    module: ModuleType = openvino  # untyped here: no stubs
    return module
