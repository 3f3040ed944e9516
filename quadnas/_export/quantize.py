"""INT8 files: OpenVINO IR through NNCF post-training quantization, ONNX through onnxruntime's static
QDQ quantization (the core in `quadnas.nn.quantize`, which INT8 latency tables share), LiteRT through the
LiteRT quantizer (`_export.litert`), all calibrated on training images of the data the network learned from.

An INT8 file cannot match PyTorch to 1e-4, so its check is its accuracy: FP32 (PyTorch) and INT8
(the file in its runtime) top-1 on the validation split side by side, with the largest logit
difference between them measured and reported.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from quadnas._export.formats import (
    INPUT_NAME,
    PARITY_TOLERANCE,
    SUFFIXES,
    FileOptions,
    Format,
    Int8Check,
    compile_openvino,
    make_parent,
    pin_batch,
    write_format,
    write_unchecked,
)
from quadnas._export.source import ExportSource
from quadnas.data import Dataset, load_dataset, take
from quadnas.errors import QuadnasError
from quadnas.nn import QuadraNet
from quadnas.nn.quantize import check_calibration, import_openvino, nncf_version, quantize_onnx, quantize_openvino

CALIBRATION_IMAGES = 300  # NNCF's default subset size; onnxruntime calibrates on the same images
BATCH = 50

Runner = Callable[[np.ndarray], np.ndarray]


def write_int8(
    source: ExportSource, fmt: Format, shape: tuple[int, int, int], out: Path, options: FileOptions
) -> tuple[list[Path], str, Int8Check]:
    """Write `source`'s network as an INT8 `fmt` file at `out`: (files, runtime, accuracy check).

    The file is calibrated on training images at its own resolution. Its accuracy is judged where the
    network learned: exported at another resolution (a 32 px training, a 224 px file), it would score
    chance in FP32 and INT8 alike, so a twin INT8 file at the training resolution (the same weights,
    quantizer and calibration images) is what the check runs.
    """
    data = _data(source, shape[-1])
    make_parent(out)
    with tempfile.TemporaryDirectory(prefix="quadnas-int8-") as tmp:
        files, runtime, run = _quantized(source, fmt, shape, out, _calibration(data, shape), Path(tmp), options)
        if options.static_batch is not None:
            _pin(out, fmt, (options.static_batch, *shape), run)
        learned = source.trained_resolution or shape[-1]
        twin = ""
        if learned != shape[-1]:
            data = _data(source, learned)
            shape = (shape[0], learned, learned)
            twin_out = Path(tmp) / f"twin{SUFFIXES[fmt][0]}"
            # unchecked: OpenVINO's FP32 can exceed the parity bound where blocks run on 1x1 maps
            _, _, run = _quantized(
                source, fmt, shape, twin_out, _calibration(data, shape), Path(tmp), options, checked=False
            )
            twin = f"; a twin INT8 file at {learned} px, where the network learned (the file itself: {out.name})"
        check = _check(source.model, run, data, CALIBRATION_IMAGES, twin)
    return files, runtime, check


def _pin(out: Path, fmt: Format, input_shape: tuple[int, ...], run: Runner) -> None:
    """Fix the INT8 file's batch at `input_shape`'s; the pinned file must compute what `run` (the file before)
    does, to float rounding."""
    pinned = pin_batch(out, fmt, input_shape, "int8")
    x = np.random.default_rng(0).standard_normal(input_shape, dtype=np.float32)
    expected = run(x)
    diff = float(np.abs(pinned(x) - expected).max())
    if not diff <= PARITY_TOLERANCE * max(1.0, float(np.abs(expected).max())):
        raise QuadnasError(
            f"{out} at a static batch of {input_shape[0]} differs from the same file with a dynamic batch by "
            f"{diff:.3g}: export it without --static-batch, and report this runtime as a bug"
        )


def _calibration(data: Dataset, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """The first training images of `data`, one a call (files run at batch 1), checked against `shape`."""
    count = min(CALIBRATION_IMAGES, len(data.train))
    images = take(data.train, torch.arange(count))[0].numpy()
    calibration = [images[i : i + 1] for i in range(len(images))]
    check_calibration(calibration, (1, *shape), f"the network (calibrated on the training split of {data.source})")
    return calibration


def _quantized(
    source: ExportSource,
    fmt: Format,
    shape: tuple[int, int, int],
    out: Path,
    calibration: list[np.ndarray],
    tmp: Path,
    options: FileOptions,
    checked: bool = True,
) -> tuple[list[Path], str, Runner]:
    """`source`'s network written at `shape` in FP32 under `tmp` (parity-checked unless not `checked`),
    quantized to `out`: (files, runtime, runner)."""
    fp32 = tmp / f"fp32-{shape[-1]}{SUFFIXES[fmt][0]}"
    write = write_format if checked else write_unchecked
    write(source.model, fmt, shape, fp32, FileOptions(options.opset, "fp32", options.metadata))
    quantize = {"onnx": _quantize_onnx, "litert": _quantize_litert}.get(fmt, _quantize_openvino)
    return quantize(fp32, out, calibration)


def _data(source: ExportSource, resolution: int) -> Dataset:
    """The data the network learned from, at the export's resolution; none is an error."""
    meta = source.checkpoint_meta
    if source.data is None or meta is None:
        raise QuadnasError(
            "--precision int8 calibrates on the data the network learned from, and this one has none "
            "(--init random): export weights from a supernet checkpoint"
        )
    return load_dataset(
        source.data,
        resolution,
        val_fraction=float(meta.config.get("val_fraction", 0.2)),
        channels=source.space.config.in_channels,
    )


def _quantize_onnx(fp32: Path, out: Path, calibration: list[np.ndarray]) -> tuple[list[Path], str, Runner]:
    import onnxruntime as ort

    quantize_onnx(fp32, out, calibration, calibration[0].shape, INPUT_NAME)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    runtime = f"onnxruntime {ort.__version__} (INT8 QDQ)"
    return [out], runtime, lambda x: np.asarray(session.run(None, {INPUT_NAME: x})[0])


def _quantize_openvino(fp32: Path, out: Path, calibration: list[np.ndarray]) -> tuple[list[Path], str, Runner]:
    quantize_openvino(fp32, out, calibration, calibration[0].shape)
    compiled, runtime = compile_openvino(import_openvino(), out, f", INT8 by NNCF {nncf_version()}")
    return [out, out.with_suffix(".bin")], runtime, lambda x: np.asarray(compiled(x)[0])


def _quantize_litert(fp32: Path, out: Path, calibration: list[np.ndarray]) -> tuple[list[Path], str, Runner]:
    from quadnas._export.litert import quantize_litert

    return quantize_litert(fp32, out, calibration)


def _check(model: QuadraNet, run: Runner, data: Dataset, calibration_images: int, note: str = "") -> Int8Check:
    """Top-1 of PyTorch (FP32) and of the INT8 file on the validation split, and their largest logit gap."""
    x, y = data.val.tensors[:2]
    right_fp32 = right_int8 = 0
    worst = 0.0
    model.eval()
    for start in range(0, len(y), BATCH):
        images, labels = x[start : start + BATCH], y[start : start + BATCH].numpy()
        with torch.inference_mode():
            fp32 = model(images).numpy()
        int8 = run(images.numpy())
        right_fp32 += int((fp32.argmax(1) == labels).sum())
        right_int8 += int((int8.argmax(1) == labels).sum())
        worst = max(worst, float(np.abs(int8 - fp32).max()))
    on = f"validation split of {data.source} at {data.resolution} px ({len(y)} images{note})"
    return Int8Check(calibration_images, right_fp32 / len(y), right_int8 / len(y), worst, on)
