"""Writing one network as a file (PyTorch state dict, ONNX, OpenVINO IR, LiteRT) and checking it against PyTorch.

Every file is read back by its runtime and run on seeded random inputs of batch 1 and 3; `write_format`
returns the max abs difference to PyTorch per batch. ONNX files carry `metadata_props` and IR files
`rt_info["model_info"]`: what a deployment needs to feed the network and read its output. LiteRT files
(`_export.litert`, batch fixed at 1: the parity batches run one image a call) carry it in their metadata table.
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import torch

from quadnas.errors import QuadnasError
from quadnas.nn import QuadraNet
from quadnas.nn.onnx import ONNX_OPSET, ONNX_OPSETS, write_onnx
from quadnas.nn.quantize import import_openvino
from quadnas.portable.sessions import openvino_core

Format = Literal["torch", "onnx", "openvino", "litert"]
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")
FORMATS: tuple[Format, ...] = ("torch", "onnx", "openvino", "litert")
SUFFIXES: dict[Format, tuple[str, ...]] = {
    "torch": (".pt", ".pth"),
    "onnx": (".onnx",),
    "openvino": (".xml",),
    "litert": (".tflite",),
}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PARITY_BATCHES = (1, 3)
# Parity bounds, relative to the logits' scale (max |logit| of PyTorch on the parity inputs, at least 1): float32
# runtimes sum in other orders, and the quadratic branches multiply what they differ by; OpenVINO's CPU plugin
# differed from PyTorch by 1.8e-4 of the scale on a fine-tuned network (docs/benchmarks.md), onnxruntime by 1e-6.
PARITY_TOLERANCE = 1e-3
FP16_TOLERANCE = 1e-2  # FP16 weights (measured 7.6e-4 absolute on a 224 px network, docs/benchmarks.md)


@dataclass(frozen=True)
class FileOptions:
    """How a file is written: its ONNX opset, its precision (FP16 weights: IR only; INT8: ONNX and IR),
    and the metadata it carries."""

    opset: int = ONNX_OPSET
    precision: Precision = "fp32"
    metadata: Mapping[str, str] = field(default_factory=dict)
    static_batch: int | None = None  # the batch an ONNX or IR file is fixed at; None: any batch runs

    def check(self, fmt: Format) -> FileOptions:
        """Options that apply to `fmt`; others are a one-line error."""
        if self.precision not in PRECISIONS:
            raise QuadnasError(f"--precision {self.precision} is not supported: use one of {', '.join(PRECISIONS)}")
        if self.precision == "fp16" and fmt != "openvino":
            raise QuadnasError(
                f"--precision fp16 compresses OpenVINO IR weights; format {fmt} has none: use --format openvino"
            )
        if self.precision == "int8" and fmt == "torch":
            raise QuadnasError(
                "--precision int8 quantizes ONNX, OpenVINO and LiteRT exports: use --format onnx, openvino or litert"
            )
        if self.static_batch is not None and fmt in ("torch", "litert"):
            raise QuadnasError(f"--static-batch fixes the batch of ONNX and OpenVINO files: drop it for --format {fmt}")
        if self.static_batch is not None and self.static_batch < 1:
            raise QuadnasError(f"--static-batch {self.static_batch} is not a batch size: give 1 or more")
        if self.opset != ONNX_OPSET and fmt in ("torch", "litert"):
            raise QuadnasError(f"--opset applies to ONNX and OpenVINO exports: drop it for --format {fmt}")
        if self.opset not in ONNX_OPSETS:
            raise QuadnasError(
                f"--opset {self.opset} is not supported: use {ONNX_OPSETS.start}..{ONNX_OPSETS.stop - 1} "
                f"(default {ONNX_OPSET}, the opset the latency tables were measured with)"
            )
        return self

    @property
    def tolerance(self) -> float:
        """The parity bound relative to the logits' scale (INT8 files are checked by accuracy instead)."""
        return FP16_TOLERANCE if self.precision == "fp16" else PARITY_TOLERANCE


@dataclass(frozen=True)
class Int8Check:
    """FP32 and INT8 accuracy of one quantized file on the validation split, and how far its logits moved."""

    calibration_images: int
    fp32_accuracy: float
    int8_accuracy: float
    max_logit_diff: float
    on: str

    @property
    def accuracy_drop(self) -> float:
        return self.fp32_accuracy - self.int8_accuracy


@dataclass(kw_only=True)
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
    options: FileOptions = FileOptions()
    parity_bound: float = math.nan  # the absolute bound `parity` passed: the relative tolerance times the scale
    int8: Int8Check | None = None  # an INT8 file is checked by accuracy, not by `parity` (empty)

    @property
    def max_abs_diff(self) -> float:
        return max(self.parity.values()) if self.parity else math.nan


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
    model: QuadraNet, fmt: Format, shape: tuple[int, int, int], out: Path, options: FileOptions
) -> tuple[list[Path], str, dict[int, float], float]:
    """Write `model` in `fmt` for inputs of `shape` (C, H, W) and any batch.

    The file is read back by its runtime; a max abs difference to PyTorch above the options'
    tolerance (1e-3; 1e-2 with FP16 weights) times the logits' scale on either parity batch is an
    error. Returns the files, the runtime, the difference per batch and the bound it passed.
    """
    files, runtime, run = write_unchecked(model, fmt, shape, out, options)
    parity, scale = _parity(model, run, shape, PARITY_BATCHES)
    bound = options.tolerance * scale
    _check_parity(model, out, runtime, parity, bound, scale, options)
    if options.static_batch is not None:  # then the file as shipped, at its one batch
        run = pin_batch(out, fmt, (options.static_batch, *shape), options.precision)
        parity, _ = _parity(model, run, shape, (options.static_batch,))
        _check_parity(model, out, runtime, parity, bound, scale, options)
    return files, runtime, parity, bound


def _check_parity(
    model: QuadraNet,
    out: Path,
    runtime: str,
    parity: dict[int, float],
    bound: float,
    scale: float,
    options: FileOptions,
) -> None:
    """A file farther from PyTorch than `bound` on any batch is an error."""
    worst = max(parity, key=lambda batch: parity[batch])
    if parity[worst] > bound or not math.isfinite(parity[worst]):
        raise QuadnasError(
            f"{out} differs from PyTorch by {parity[worst]:.3g} (max abs, batch {worst}) on {runtime}, above "
            f"{bound:.3g} ({options.tolerance:g} of the logits' scale {scale:.3g}): do not ship it; report the arch "
            f"'{model.arch}' and this runtime as a bug"
        )


def pin_batch(out: Path, fmt: Format, input_shape: tuple[int, ...], precision: Precision) -> Runner:
    """Fix the batch dimension of the ONNX or IR file `out` (written with a dynamic one) at `input_shape`'s,
    in place; returns a runner of the pinned file. An IR keeps its weights' precision (FP16 for fp16 and int8
    files, as they were saved)."""
    if fmt == "onnx":
        import onnx
        import onnxruntime as ort

        graph = onnx.load(str(out))
        for value in (*graph.graph.input, *graph.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = input_shape[0]
        onnx.save(graph, str(out))
        onnx.checker.check_model(str(out), full_check=True)
        quiet = ort.SessionOptions()
        quiet.log_severity_level = 3
        session = ort.InferenceSession(str(out), quiet, providers=["CPUExecutionProvider"])
        return lambda x: np.asarray(session.run(None, {INPUT_NAME: x})[0])
    ov = import_openvino()
    model = ov.Core().read_model(str(out))
    model.reshape(list(input_shape))
    with tempfile.TemporaryDirectory(prefix="quadnas-pin-", dir=out.parent) as tmp:
        pinned = Path(tmp) / out.name
        ov.save_model(model, str(pinned), compress_to_fp16=precision != "fp32")
        del model  # it may map the old weights file
        os.replace(pinned.with_suffix(".bin"), out.with_suffix(".bin"))
        os.replace(pinned, out)
    compiled, _ = compile_openvino(ov, out)
    return lambda x: np.asarray(compiled(x)[0])


def write_unchecked(
    model: QuadraNet, fmt: Format, shape: tuple[int, int, int], out: Path, options: FileOptions
) -> tuple[list[Path], str, Runner]:
    """Write `model` in `fmt` as `write_format` does, without the parity check: (files, runtime, runner)."""
    model = model.eval()
    writer = {"torch": _write_torch, "onnx": _write_onnx, "openvino": _write_openvino, "litert": _write_litert}[fmt]
    make_parent(out)
    try:
        return writer(model, shape, out, options)
    except OSError as e:
        raise _unwritable(out, e) from None


def make_parent(out: Path) -> None:
    """Create the folder `out` goes into; one line naming the path if it cannot be."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(out, e) from None


def _unwritable(out: Path, error: OSError) -> QuadnasError:
    return QuadnasError(f"cannot write --out {out}: {error.strerror or error}: give a writable path")


def _write_torch(
    model: QuadraNet, shape: tuple[int, ...], out: Path, options: FileOptions
) -> tuple[list[Path], str, Runner]:
    """A state dict (metadata lives in the sidecar), rebuilt and loaded back."""
    torch.save(model.state_dict(), out)
    rebuilt = QuadraNet(model.space, model.arch, model.num_classes)
    rebuilt.load_state_dict(torch.load(out, map_location="cpu", weights_only=True))
    rebuilt.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits: torch.Tensor = rebuilt(torch.from_numpy(x))
            return logits.numpy()

    return [out], f"torch {torch.__version__.split('+')[0]} (state dict read back)", run


def _write_onnx(
    model: QuadraNet, shape: tuple[int, ...], out: Path, options: FileOptions
) -> tuple[list[Path], str, Runner]:
    import onnxruntime as ort

    _onnx_file(model, shape, out, options)
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    session = ort.InferenceSession(str(out), quiet, providers=["CPUExecutionProvider"])
    return [out], f"onnxruntime {ort.__version__}", lambda x: session.run(None, {INPUT_NAME: x})[0]


def _onnx_file(model: QuadraNet, shape: tuple[int, ...], out: Path, options: FileOptions) -> None:
    """ONNX with a dynamic batch dimension and the options' metadata, checked by onnx.checker."""
    import onnx

    write_onnx(
        model, (1, *shape), out, input_name=INPUT_NAME, output_name=OUTPUT_NAME, dynamic_batch=True, opset=options.opset
    )
    graph = onnx.load(str(out))
    onnx.helper.set_model_props(graph, dict(options.metadata))
    onnx.save(graph, str(out))
    onnx.checker.check_model(str(out), full_check=True)


def _write_openvino(
    model: QuadraNet, shape: tuple[int, ...], out: Path, options: FileOptions
) -> tuple[list[Path], str, Runner]:
    """IR through OpenVINO's converter from the checked ONNX graph (faster than tracing the module);
    the metadata goes to `rt_info["model_info"]`, FP16 weights where the options ask."""
    ov = import_openvino()
    with tempfile.TemporaryDirectory(prefix="quadnas-export-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        _onnx_file(model, shape, onnx_path, FileOptions(opset=options.opset))
        converted = ov.convert_model(onnx_path)
        for key, value in options.metadata.items():
            converted.set_rt_info(value, ["model_info", key])
        ov.save_model(converted, str(out), compress_to_fp16=options.precision == "fp16")
    compiled, runtime = compile_openvino(ov, out)
    return [out, out.with_suffix(".bin")], runtime, lambda x: compiled(x)[0]


# How exports are checked and tables timed on OpenVINO's CPU plugin: float32 inference. Without the hint
# the plugin infers in bf16 on CPUs with bf16 instructions (AVX-512 BF16, AMX), and both the logits
# and the latency differ from what quadnas checked and predicted.
OPENVINO_CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def compile_openvino(ov: ModuleType, model: Path, what: str = "") -> tuple[Any, str]:
    """`model` compiled for OpenVINO's CPU with `OPENVINO_CPU_CONFIG`, and the runtime's description, which
    names the precision it infers in and, where it differs, the plugin's default on this CPU."""
    core = openvino_core()  # the process's one Core (see there why one)
    compiled = core.compile_model(str(model), "CPU", OPENVINO_CPU_CONFIG)
    used, default = openvino_precision(compiled), openvino_precision(core, "CPU")
    unlike = f"; its default here is {default}" if default != used else ""
    return compiled, f"openvino {ov.get_version().split('-')[0]} (CPU{what}, {used} inference{unlike})"


def benchmark_app_command(path: Path, input_shape: tuple[int, ...], threads: int | None = None) -> str:
    """OpenVINO's `benchmark_app` timing `path` (an IR, or ONNX, which it also reads) as quadnas's tables time
    a model: batch 1 (the file's batch dimension is dynamic, so the shape is given), CPU, latency hint,
    float32 inference, `threads` threads where given, for 10 s."""
    shape = "[" + ",".join(str(d) for d in input_shape) + "]"
    command = f'benchmark_app -m {path.name} -d CPU -shape "{shape}" -hint latency -infer_precision f32 -t 10'
    return command + (f" -nthreads {threads}" if threads else "")


def openvino_precision(holder: Any, *device: str) -> str:
    """The inference precision (f32, bf16, f16) a compiled model runs in, or a `Core`'s default for `device`."""
    try:
        name: str = holder.get_property(*device, "INFERENCE_PRECISION_HINT").get_type_name()
    except Exception:  # a plugin without the property
        return "unknown"
    return name


def _write_litert(
    model: QuadraNet, shape: tuple[int, ...], out: Path, options: FileOptions
) -> tuple[list[Path], str, Runner]:
    """A .tflite file through litert-torch (`_export.litert`), the metadata in its metadata table."""
    from quadnas._export.litert import write_litert

    return write_litert(model, shape, out, dict(options.metadata))


def require_litert() -> None:
    """A QuadnasError naming the install command unless LiteRT's converter, quantizer and interpreter are here."""
    from quadnas.nn.litert import LITERT_HINT

    for package in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert"):
        if importlib.util.find_spec(package) is None:
            raise QuadnasError(f"format litert needs the {package} package, which is not installed: {LITERT_HINT}")


def _parity(
    model: QuadraNet, run: Runner, shape: tuple[int, ...], batches: tuple[int, ...]
) -> tuple[dict[int, float], float]:
    """Max abs difference to PyTorch per batch size on seeded random inputs, and the logits' scale
    (max |logit| of PyTorch, at least 1)."""
    generator = torch.Generator().manual_seed(0)
    diffs, scale = {}, 1.0
    for batch in batches:
        x = torch.randn(batch, *shape, generator=generator)
        with torch.no_grad():
            expected = model(x).numpy()
        got = np.asarray(run(x.numpy()))
        diffs[batch] = float(np.abs(got - expected).max()) if got.shape == expected.shape else math.inf
        scale = max(scale, float(np.abs(expected).max()))
    return diffs, scale
