"""Writing one network as a file (PyTorch state dict, ONNX, OpenVINO IR) and checking it against PyTorch.

Every file is read back by its runtime and run on seeded random inputs of batch 1 and 3; `write_format`
returns the max abs difference to PyTorch per batch.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import torch

from quadnas.errors import QuadnasError
from quadnas.nn import QuadraNet
from quadnas.nn.onnx import write_onnx

Format = Literal["torch", "onnx", "openvino"]
FORMATS: tuple[Format, ...] = ("torch", "onnx", "openvino")
SUFFIXES: dict[Format, tuple[str, ...]] = {"torch": (".pt", ".pth"), "onnx": (".onnx",), "openvino": (".xml",)}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PARITY_BATCHES = (1, 3)
PARITY_TOLERANCE = 1e-4
OPENVINO_HINT = "pip install 'quadnas[openvino]'"


@dataclass
class ExportResult:
    """The files one export wrote and how closely the written model matches PyTorch."""

    format: str
    path: Path
    files: list[Path]
    sidecar: Path
    resolution: int
    input_shape: tuple[int, int, int, int]  # at batch 1; the batch dimension itself is dynamic
    runtime: str
    parity: dict[int, float]  # batch size -> max abs difference to PyTorch

    @property
    def max_abs_diff(self) -> float:
        return max(self.parity.values())


def output_path(fmt: str, out: str | Path) -> Path:
    """`out`, given the format's suffix when it has none; a wrong suffix is an error."""
    if fmt not in FORMATS:
        raise QuadnasError(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    given = Path(out)
    if given.is_dir():
        raise QuadnasError(f"--out {given} is a folder: give a file path, e.g. {given / ('model' + SUFFIXES[fmt][0])}")
    if not given.suffix:
        return output_path(fmt, given.with_suffix(SUFFIXES[fmt][0]))
    if given.suffix.lower() not in SUFFIXES[fmt]:
        raise QuadnasError(f"--out {given} does not fit format {fmt}: name it *{SUFFIXES[fmt][0]}")
    return given


Runner = Callable[[np.ndarray], np.ndarray]


def write_format(
    model: QuadraNet, fmt: Format, shape: tuple[int, int, int], out: Path
) -> tuple[list[Path], str, dict[int, float]]:
    """Write `model` in `fmt` for inputs of `shape` (C, H, W) and any batch.

    The file is read back by its runtime; a max abs difference to PyTorch above 1e-4 on
    either parity batch is an error.
    """
    model = model.eval()
    writer = {"torch": _write_torch, "onnx": _write_onnx, "openvino": _write_openvino}[fmt]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        files, runtime, run = writer(model, shape, out)
    except OSError as e:
        raise QuadnasError(f"cannot write --out {out}: {e.strerror or e}: give a writable path") from None
    parity = _parity(model, run, shape)
    worst = max(parity, key=lambda batch: parity[batch])
    if parity[worst] > PARITY_TOLERANCE or not math.isfinite(parity[worst]):
        raise QuadnasError(
            f"{out} differs from PyTorch by {parity[worst]:.3g} (max abs, batch {worst}) on {runtime}, above "
            f"{PARITY_TOLERANCE:g}: do not ship it; report the arch '{model.arch}' and this runtime as a bug"
        )
    return files, runtime, parity


def _write_torch(model: QuadraNet, shape: tuple[int, ...], out: Path) -> tuple[list[Path], str, Runner]:
    torch.save(model.state_dict(), out)
    rebuilt = QuadraNet(model.space, model.arch, model.num_classes)
    rebuilt.load_state_dict(torch.load(out, map_location="cpu", weights_only=True))
    rebuilt.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits: torch.Tensor = rebuilt(torch.from_numpy(x))
            return logits.numpy()

    return [out], f"torch {torch.__version__.split('+')[0]} (state dict read back)", run


def _write_onnx(model: QuadraNet, shape: tuple[int, ...], out: Path) -> tuple[list[Path], str, Runner]:
    import onnxruntime as ort

    _onnx_file(model, shape, out)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    return [out], f"onnxruntime {ort.__version__}", lambda x: session.run(None, {INPUT_NAME: x})[0]


def _onnx_file(model: QuadraNet, shape: tuple[int, ...], out: Path) -> None:
    """ONNX with a dynamic batch dimension, checked by onnx.checker."""
    import onnx

    write_onnx(model, (1, *shape), out, input_name=INPUT_NAME, output_name=OUTPUT_NAME, dynamic_batch=True)
    onnx.checker.check_model(str(out), full_check=True)


def _write_openvino(model: QuadraNet, shape: tuple[int, ...], out: Path) -> tuple[list[Path], str, Runner]:
    """IR through OpenVINO's converter from the checked ONNX graph (faster than tracing the module)."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory(prefix="quadnas-export-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        _onnx_file(model, shape, onnx_path)
        ov.save_model(ov.convert_model(onnx_path), str(out), compress_to_fp16=False)
    compiled = ov.Core().compile_model(str(out), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [out, out.with_suffix(".bin")], f"openvino {ov.get_version().split('-')[0]} (CPU)", lambda x: compiled(x)[0]


def import_openvino() -> ModuleType:
    """The `openvino` module, or a QuadnasError naming the install command."""
    try:
        import openvino
    except ImportError:
        raise QuadnasError(
            f"format openvino needs the openvino package, which is not installed: {OPENVINO_HINT}"
        ) from None
    module: ModuleType = openvino  # untyped here: no stubs
    return module


def _parity(model: QuadraNet, run: Runner, shape: tuple[int, ...]) -> dict[int, float]:
    """Max abs difference to PyTorch per batch size, on seeded random inputs."""
    generator = torch.Generator().manual_seed(0)
    diffs = {}
    for batch in PARITY_BATCHES:
        x = torch.randn(batch, *shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = np.asarray(run(x.numpy()))
        diffs[batch] = float(np.abs(got - expected).max()) if got.shape == expected.shape else math.inf
    return diffs
