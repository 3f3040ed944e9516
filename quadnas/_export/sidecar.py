"""The YAML sidecar beside every export (`model.onnx` -> `model.onnx.yaml`) and `load`, which rebuilds
a PyTorch export from it.

The sidecar is named after the whole file, so exports that share a stem keep their own.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from quadnas._export.formats import (
    INPUT_NAME,
    OPENVINO_CPU_CONFIG,
    OUTPUT_NAME,
    ExportResult,
    benchmark_app_command,
)
from quadnas._export.source import ExportSource, read_yaml
from quadnas._version import __version__
from quadnas.errors import QuadnasError
from quadnas.nn import QuadraNet
from quadnas.record import DeviceRecord
from quadnas.space import SearchSpace


def check_sidecar_target(sidecar: Path) -> None:
    """Refuse to overwrite a YAML that is not an export sidecar (a `model.onnx.yaml` of the user's own)."""
    if not sidecar.exists():
        return
    try:
        existing = yaml.safe_load(sidecar.read_text())
    except (OSError, yaml.YAMLError):
        existing = None
    is_sidecar = isinstance(existing, dict) and {"format", "file", "parity"} <= existing.keys()
    if not is_sidecar:
        raise QuadnasError(
            f"the export's sidecar {sidecar} would overwrite a file that is not an export sidecar: "
            "choose another --out name"
        )


def sidecar_record(source: ExportSource, result: ExportResult) -> dict[str, Any]:
    """What the YAML beside an export says: arch, space, input, classes, normalisation, accuracy."""
    space, model = source.space, source.model
    normalisation = None
    if source.mean is not None:
        assert source.std is not None  # set with the mean, from one dataset
        normalisation = {
            "pixels": "scaled to [0, 1], then (x - mean) / std per channel",
            "mean": [float(v) for v in source.mean],
            "std": [float(v) for v in source.std],
        }
    record = source.record
    return {
        "format": result.format,
        "file": result.path.name,
        "arch": str(source.arch),
        "space": {
            "name": space.name,
            "path": space.source,
            "fingerprint": space.fingerprint(),
            "config": space.config.model_dump(),
        },
        "input": _input(source, result.resolution, result.options.static_batch),
        "output": _output(source, result.options.static_batch),
        "num_classes": model.num_classes,
        "classes": list(source.classes) if source.classes else None,
        "normalisation": normalisation,
        "weights": source.weights,
        "trained_resolution": source.trained_resolution,
        "resolution_note": resolution_note(source, result.resolution),
        "accuracy": source.accuracy,
        "accuracy_on": source.accuracy_on,
        "data": source.data,
        "checkpoint": (
            {"path": str(source.checkpoint), "sha256_16": source.checkpoint_sha} if source.checkpoint else None
        ),
        "search": (
            None
            if record is None
            else {"result": str(source.record_path), "devices": [_predicted(entry) for entry in record.devices]}
        ),
        "file_options": (
            None
            if result.format == "torch"
            else {"weights_precision": result.options.precision, "batch": 1, "metadata": "quadnas_model_info"}
            if result.format == "litert"
            else {"onnx_opset": result.options.opset, "weights_precision": result.options.precision}
        ),
        "parity": _parity(result),
        "reproduce": _reproduce(result),
        "quadnas_version": __version__,
    }


def _reproduce(result: ExportResult) -> dict[str, Any] | None:
    """How the file was run for its check, and how to time it as the OpenVINO tables time networks."""
    if result.format == "torch":
        return None
    return {
        "openvino_compile": {"device": "CPU", "config": dict(OPENVINO_CPU_CONFIG)},
        "benchmark_app": benchmark_app_command(result.path, result.input_shape),
    }


def _parity(result: ExportResult) -> dict[str, Any]:
    """How the file was checked: max abs difference to PyTorch, or for INT8, accuracy side by side."""
    if result.int8 is None:
        return {
            "runtime": result.runtime,
            "batches": list(result.parity),
            "tolerance": result.parity_bound,
            "tolerance_of_logit_scale": result.options.tolerance,
            "max_abs_diff": result.max_abs_diff,
        }
    check = result.int8
    return {
        "runtime": result.runtime,
        "int8_vs_fp32_on": check.on,
        "fp32_accuracy": check.fp32_accuracy,
        "int8_accuracy": check.int8_accuracy,
        "max_logit_diff": check.max_logit_diff,
        "calibration_images": check.calibration_images,
    }


def _input(source: ExportSource, resolution: int, batch: int | None = None) -> dict[str, Any]:
    """The input's record; `batch` where the file fixes it, else the dynamic dimension's name."""
    channels = source.space.config.in_channels
    shape = [batch or "batch", channels, resolution, resolution]
    return {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "shape": shape, "resolution": resolution}


def _output(source: ExportSource, batch: int | None = None) -> dict[str, Any]:
    return {"name": OUTPUT_NAME, "shape": [batch or "batch", source.model.num_classes]}


def model_info(source: ExportSource, resolution: int, batch: int | None = None) -> dict[str, str]:
    """What an ONNX or IR file carries about itself (metadata_props, rt_info model_info), as strings.

    OpenVINO's Model API reads `model_type`, `labels`, `mean_values` and `scale_values` (in
    0..255 pixel units); the `quadnas_*` keys hold the rest, lists and records as JSON.
    """
    info = {
        "model_type": "Classification",
        "quadnas_version": __version__,
        "quadnas_arch": str(source.arch),
        "quadnas_space": f"{source.space.name} ({source.space.fingerprint()})",
        "quadnas_input": json.dumps(_input(source, resolution, batch)),
        "quadnas_output": json.dumps(_output(source, batch)),
        "quadnas_weights": source.weights,
    }
    if source.classes:
        info["labels"] = " ".join(label.replace(" ", "_") for label in source.classes)
        info["quadnas_classes"] = json.dumps(list(source.classes))
    if source.mean is not None and source.std is not None:
        info["mean_values"] = " ".join(f"{255 * m:.6g}" for m in source.mean)
        info["scale_values"] = " ".join(f"{255 * s:.6g}" for s in source.std)
        info["quadnas_normalisation"] = json.dumps(
            {"pixels": "scaled to [0, 1], then (x - mean) / std", "mean": list(source.mean), "std": list(source.std)}
        )
    if source.accuracy is not None:
        info["quadnas_accuracy"] = json.dumps({"top1": source.accuracy, "on": source.accuracy_on})
    if source.record is not None:
        info["quadnas_predicted_latency"] = json.dumps([_predicted(entry) for entry in source.record.devices])
    return info


def _predicted(entry: DeviceRecord) -> dict[str, Any]:
    """What the search predicted on one of its devices, against its budget."""
    return {"device": entry.device, "predicted_latency_ms": entry.latency_ms, "budget_ms": entry.budget_ms}


def resolution_note(source: ExportSource, resolution: int) -> str:
    """Which resolution the weights learned at and which the export runs at."""
    deploy = source.space.config.resolution
    where = (
        "the deployment resolution, where latency is predicted"
        if resolution == deploy
        else f"not the deployment resolution ({deploy} px) where latency is predicted"
    )
    if source.trained_resolution is None:
        return f"random weights (latency work only); exported at {resolution} px, {where}"
    if source.trained_resolution == resolution:
        return f"trained and exported at {resolution} px, {where}"
    return (
        f"weights trained at {source.trained_resolution} px, exported at {resolution} px ({where}): the network "
        f"is fully convolutional with global average pooling, so it runs at any multiple of "
        f"{source.space.stride} px, "
        f"but its accuracy was measured at {source.trained_resolution} px"
    )


def sidecar_path(export: str | Path) -> Path:
    """Where an export's YAML sidecar goes: beside it, named after the whole file (`m.pt` -> `m.pt.yaml`)."""
    export = Path(export)
    return export.with_name(f"{export.name}.yaml")


def find_sidecar(path: str | Path) -> Path:
    """The sidecar of an export (or `path` itself where it is one): `m.pt.yaml`, else an old-style
    `m.yaml` written for that file by quadnas before sidecars took the whole file name."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return path
    sidecar = sidecar_path(path)
    old = path.with_suffix(".yaml")
    if sidecar.exists() or not old.is_file():
        return sidecar
    with contextlib.suppress(OSError, yaml.YAMLError):
        record = yaml.safe_load(old.read_text())
        if isinstance(record, dict) and record.get("file") == path.name:
            return old
    return sidecar


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The YAML sidecar of an export (give the export or the sidecar itself)."""
    sidecar = find_sidecar(path)
    record = read_yaml(
        sidecar,
        "an export's YAML sidecar must stay beside it (re-export with `quadnas export`)",
        f"export sidecar {sidecar}",
    )
    if not isinstance(record, dict) or "arch" not in record or "space" not in record:
        raise QuadnasError(f"{sidecar} is not a quadnas export sidecar: re-export with `quadnas export`")
    return record


def load(path: str | Path) -> QuadraNet:
    """Rebuild a PyTorch export (`.pt` or its `.pt.yaml` sidecar) as a QuadraNet in eval mode."""
    sidecar = read_sidecar(path)
    if sidecar.get("format") != "torch":
        raise QuadnasError(
            f"{path} is a {sidecar.get('format')} export; quadnas.load rebuilds torch exports: "
            "run ONNX files with onnxruntime and IR files with OpenVINO"
        )
    space = SearchSpace.from_dict(sidecar["space"]["config"], source=sidecar["space"].get("path", "<export>"))
    if space.fingerprint() != sidecar["space"]["fingerprint"]:
        raise QuadnasError(f"{path}: the space in its sidecar does not match its fingerprint: re-export the model")
    model = QuadraNet(space, space.parse(sidecar["arch"]), sidecar["num_classes"])
    weights = find_sidecar(path).parent / sidecar["file"]
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise QuadnasError(f"{weights} does not exist: keep the weights beside their sidecar") from None
    model.load_state_dict(state)
    return model.eval()
