"""Export one arch as a standalone QuadraNet: PyTorch, ONNX or OpenVINO IR, with parity checks.

`build_model` turns a `best.yaml` (or an arch text and a space) into an `ExportSource`:
the network with weights inherited from the supernet checkpoint (or freshly
initialised, for latency work) and what a deployment needs to know about it.
`finetune` trains it stand-alone. `export_model` writes one format plus a YAML
sidecar named after the whole file (`model.onnx` -> `model.onnx.yaml`, so exports that
share a stem keep their own), after checking the written file against PyTorch on random
inputs (batch 1 and 3). `load` rebuilds a PyTorch export; `verify_latency` times an
export on a local runtime and compares it with the latency table's prediction and the
budget, which it gates only on the host and runtime the table was measured with.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import yaml
from torch import nn

from quadnas._version import __version__
from quadnas.data import load_dataset
from quadnas.errors import QuadnasError
from quadnas.latency.devices import load_device_table
from quadnas.latency.host import foreign_host_note
from quadnas.latency.measure.backends import ONNX_OPSET, Backend, get_backend
from quadnas.latency.measure.kit_runner import Schedule, TimedSession, measure_interleaved
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable, TableMeta
from quadnas.nn import QuadraNet
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.checkpoint import CheckpointMeta, checkpoint_hash, load_checkpoint
from quadnas.supernet.evaluate import accuracy

Format = Literal["torch", "onnx", "openvino"]
Init = Literal["inherit", "random"]
FORMATS: tuple[str, ...] = ("torch", "onnx", "openvino")
SUFFIXES = {"torch": (".pt", ".pth"), "onnx": (".onnx",), "openvino": (".xml",)}
INITS: tuple[str, ...] = ("inherit", "random")
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PARITY_BATCHES = (1, 3)
PARITY_TOLERANCE = 1e-4
VERIFY_ROUNDS = 30
ROUND_S = 0.05  # a verify-latency round: at least this long, so short networks repeat many times
OPENVINO_HINT = "pip install 'quadnas[openvino]'"


# ---- what is exported -----------------------------------------------------
@dataclass
class ExportSource:
    """A standalone network and what a deployment needs to know about it."""

    model: QuadraNet
    space: SearchSpace
    arch: Arch
    weights: Literal[
        "inherited", "fine-tuned", "random", "untrained", "trained"
    ]  # untrained: a proxy's arch, not yet trained
    classes: tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    trained_resolution: int | None = None
    accuracy: float | None = None
    accuracy_on: str | None = None
    data: str | None = None
    checkpoint: Path | None = None
    checkpoint_sha: str | None = None
    checkpoint_meta: CheckpointMeta | None = None
    record: dict = field(default_factory=dict)
    record_path: Path | None = None
    proxy_width: float | None = None  # the width of the proxy supernet that ranked the arch, if one did


def _read_yaml(path: Path, if_missing: str, what: str):
    """Parsed YAML; a missing or unreadable file is one line naming it and the fix."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise QuadnasError(f"{path} does not exist: {if_missing}") from None
    except (OSError, yaml.YAMLError) as e:
        raise QuadnasError(f"cannot read {what}: {e}") from None


def read_record(path: str | Path) -> dict:
    """A search's `best.yaml`, checked for the keys export needs."""
    path = Path(path)
    record = _read_yaml(
        path, "give the best.yaml of a search (runs/<study>/best.yaml) or --arch TEXT --space PATH", str(path)
    )
    if not (isinstance(record, dict) and isinstance(record.get("arch"), str) and isinstance(record.get("space"), dict)):
        raise QuadnasError(f"{path} is not a search result (no 'arch' and 'space' keys): give runs/<study>/best.yaml")
    return record


def load_space(space: SearchSpace | str | Path | None, record: dict, where: str) -> SearchSpace:
    """The space given, else the one the record names; its fingerprint must match the record's."""
    if not isinstance(space, SearchSpace):
        known = record.get("space", {})
        space = SearchSpace.load(space or known.get("path") or known.get("name"))
    wanted = record.get("space", {}).get("fingerprint")
    if wanted and wanted != space.fingerprint():
        raise QuadnasError(
            f"{where} was searched in space '{record['space'].get('name')}' (fingerprint {wanted}) but "
            f"{space.source} has fingerprint {space.fingerprint()}: the space file changed since the search; "
            "restore it or pass --space with the space the search used"
        )
    return space


def build_model(
    arch_source: str | Path,
    space: SearchSpace | str | Path | None = None,
    checkpoint: str | Path | None = None,
    init: Init = "inherit",
    seed: int = 0,
) -> ExportSource:
    """The network of a `best.yaml` path or an arch text (of `space`, default quadranet-t).

    `init="inherit"` copies the weights of `arch` out of the supernet checkpoint
    (default: the one the search used); `init="random"` initialises them afresh
    (seeded), which is all latency measurements need.
    """
    if init not in INITS:
        raise QuadnasError(f"unknown --init '{init}': use one of {', '.join(INITS)}")
    text = str(arch_source)
    is_record = Path(text).suffix in (".yaml", ".yml") or Path(text).is_file()
    record = read_record(text) if is_record else {}
    record_path = Path(text) if is_record else None
    where = text if is_record else "the arch"
    space = load_space(space, record, where)
    arch = space.parse(record["arch"] if is_record else text)
    if init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = QuadraNet(space, arch).eval()
        return ExportSource(model, space, arch, "random", record=record, record_path=record_path)
    return _inherit(space, arch, record, record_path, checkpoint, seed)


def _inherit(
    space: SearchSpace, arch: Arch, record: dict, record_path: Path | None, checkpoint: str | Path | None, seed: int
) -> ExportSource:
    searched = record.get("supernet") or {}
    path = checkpoint or searched.get("checkpoint")
    if not path:
        raise QuadnasError(
            "no supernet checkpoint to inherit weights from: pass --checkpoint PATH, "
            "or --init random to export freshly initialised weights (latency work)"
        )
    path = Path(path)
    if not path.is_file():
        raise QuadnasError(
            f"supernet checkpoint {path} does not exist: pass --checkpoint with an existing file, "
            "or --init random to export freshly initialised weights"
        )
    supernet, meta = load_checkpoint(path, space)
    if supernet.width != 1:
        return _from_proxy(space, arch, record, record_path, path, meta, supernet.width, seed)
    sha = checkpoint_hash(path)
    same_as_search = bool(record) and sha == searched.get("sha256_16")
    if record and checkpoint is None and not same_as_search:
        raise QuadnasError(
            f"supernet checkpoint {path} changed since the search (sha256 {sha}, the search used "
            f"{searched.get('sha256_16')}): its accuracy no longer holds; rerun the search or pass --checkpoint"
        )
    data = meta.dataset
    source = ExportSource(
        supernet.extract(arch),
        space,
        arch,
        "inherited",
        classes=data.classes,
        mean=data.mean,
        std=data.std,
        trained_resolution=data.resolution,
        data=data.source,
        checkpoint=path,
        checkpoint_sha=sha,
        checkpoint_meta=meta,
        record=record,
        record_path=record_path,
    )
    if same_as_search and record.get("accuracy") is not None:
        source.accuracy = float(record["accuracy"])
        source.accuracy_on = (
            f"validation split of {data.source} at {data.resolution} px, weights inherited from the supernet"
        )
    return source


def _from_proxy(
    space: SearchSpace,
    arch: Arch,
    record: dict,
    record_path: Path | None,
    path: Path,
    meta: CheckpointMeta,
    width: float,
    seed: int,
) -> ExportSource:
    """A proxy supernet ranked the arch; its narrower weights do not fit: a fresh full-width network (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = QuadraNet(space, arch, meta.dataset.num_classes).eval()
    return ExportSource(
        model,
        space,
        arch,
        "untrained",
        checkpoint=path,
        checkpoint_sha=checkpoint_hash(path),
        checkpoint_meta=meta,
        record=record,
        record_path=record_path,
        proxy_width=width,
    )


# ---- stand-alone fine-tuning ------------------------------------------------
def finetune(
    source: ExportSource,
    epochs: int,
    data: str | None = None,
    lr: float = 5e-4,
    weight_decay: float = 0.05,
    batch_size: int = 128,
    seed: int = 0,
    progress: Progress | None = None,
) -> ExportSource:
    """A copy of the network trained stand-alone (AdamW, cosine schedule), with its validation accuracy.

    Starts from the inherited weights, or from scratch when a proxy supernet ranked the
    arch. Runs on the checkpoint's dataset at its resolution unless `data` names another
    source with the same number of classes.
    """
    progress = progress or Progress()
    meta = source.checkpoint_meta
    if meta is None:
        raise QuadnasError(
            "fine-tuning starts from inherited weights: pass a supernet checkpoint "
            "(drop --init random) or drop --finetune-epochs"
        )
    if epochs < 1:
        raise QuadnasError(f"--finetune-epochs {epochs} must be at least 1")
    dataset = load_dataset(
        data or meta.dataset.source,
        meta.dataset.resolution,
        val_fraction=float(meta.config.get("val_fraction", 0.2)),
        channels=source.space.config.in_channels,
        progress=progress,
    )
    if data is None and dataset.fingerprint != meta.dataset.fingerprint:
        raise QuadnasError(
            f"data '{meta.dataset.source}' changed since the supernet was trained (fingerprint {dataset.fingerprint}, "
            f"trained on {meta.dataset.fingerprint}): pass --data with the data to fine-tune on"
        )
    if dataset.num_classes != source.model.num_classes:
        raise QuadnasError(
            f"data '{dataset.source}' has {dataset.num_classes} classes but the network's head has "
            f"{source.model.num_classes}: fine-tune on data with the checkpoint's classes ({meta.dataset.source})"
        )
    model = copy.deepcopy(source.model)
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(dataset.train, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    with progress.task("fine-tuning", epochs * len(loader), unit="step") as task:
        for _ in range(epochs):
            for x, y in loader:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                schedule.step()
                task.advance(1, f"loss {loss.item():.3f}")
    model.eval()
    how = "training from scratch" if source.weights == "untrained" else "fine-tuning from inherited weights"
    return replace(
        source,
        model=model,
        weights="trained" if source.weights == "untrained" else "fine-tuned",
        classes=dataset.classes,
        mean=dataset.mean,
        std=dataset.std,
        trained_resolution=dataset.resolution,
        accuracy=accuracy(model, dataset.val),
        data=dataset.source,
        accuracy_on=(
            f"validation split of {dataset.source} at {dataset.resolution} px, after {epochs} epoch(s) "
            f"of stand-alone {how}"
        ),
    )


# ---- writing the formats ----------------------------------------------------
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


def export_model(source: ExportSource, fmt: Format, out: str | Path, resolution: int | None = None) -> ExportResult:
    """Write `source` in `fmt` at `resolution` (default: the space's deployment resolution).

    The written file is read back and run on random inputs of batch 1 and 3; a max abs
    difference to PyTorch above 1e-4 is an error. A YAML sidecar goes beside it (`sidecar_path`).
    """
    if source.weights == "untrained":
        raise QuadnasError(
            f"supernet {source.checkpoint} is a width-{source.proxy_width:g} proxy: it ranked the archs, but its "
            f"weights do not fit the full-width network. Add --finetune-epochs N (e.g. 10) to train the arch "
            f"stand-alone on {source.checkpoint_meta.dataset.source} first, pass --checkpoint with a full-width "
            f"supernet (`quadnas train`), or --init random for latency work"
        )
    out = output_path(fmt, out)
    sidecar = sidecar_path(out)
    _check_sidecar_target(sidecar)
    resolution = source.space.check_resolution(resolution or source.space.config.resolution)
    shape = (source.space.config.in_channels, resolution, resolution)
    model = source.model.eval()
    writer = {"torch": _write_torch, "onnx": _write_onnx, "openvino": _write_openvino}[fmt]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        files, runtime, run = writer(model, shape, out)
    except OSError as e:
        raise QuadnasError(f"cannot write --out {out}: {e.strerror or e}: give a writable path") from None
    parity = _parity(model, run, shape)
    worst = max(parity, key=parity.get)
    if parity[worst] > PARITY_TOLERANCE or not math.isfinite(parity[worst]):
        raise QuadnasError(
            f"{out} differs from PyTorch by {parity[worst]:.3g} (max abs, batch {worst}) on {runtime}, above "
            f"{PARITY_TOLERANCE:g}: do not ship it; report the arch '{source.arch}' and this runtime as a bug"
        )
    result = ExportResult(fmt, out, files + [sidecar], sidecar, resolution, (1, *shape), runtime, parity)
    sidecar.write_text(yaml.safe_dump(sidecar_record(source, result), sort_keys=False))
    return result


def _check_sidecar_target(sidecar: Path) -> None:
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


Runner = Callable[[np.ndarray], np.ndarray]


def _write_torch(model: QuadraNet, shape: tuple[int, ...], out: Path) -> tuple[list[Path], str, Runner]:
    torch.save(model.state_dict(), out)
    rebuilt = QuadraNet(model.space, model.arch, model.num_classes)
    rebuilt.load_state_dict(torch.load(out, map_location="cpu", weights_only=True))
    rebuilt.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return rebuilt(torch.from_numpy(x)).numpy()

    return [out], f"torch {torch.__version__.split('+')[0]} (state dict read back)", run


def _write_onnx(model: QuadraNet, shape: tuple[int, ...], out: Path) -> tuple[list[Path], str, Runner]:
    import onnxruntime as ort

    _onnx_file(model, shape, out)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    return [out], f"onnxruntime {ort.__version__}", lambda x: session.run(None, {INPUT_NAME: x})[0]


def _onnx_file(model: QuadraNet, shape: tuple[int, ...], out: Path) -> None:
    """ONNX (opset 17, TorchScript exporter) with a dynamic batch dimension, checked by onnx.checker."""
    import onnx

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated, yet exports these ops exactly
        torch.onnx.export(
            model,
            (torch.zeros(1, *shape),),
            str(out),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
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


def import_openvino():
    """The `openvino` module, or a QuadnasError naming the install command."""
    try:
        import openvino
    except ImportError:
        raise QuadnasError(
            f"format openvino needs the openvino package, which is not installed: {OPENVINO_HINT}"
        ) from None
    return openvino


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


# ---- the sidecar and loading -----------------------------------------------
def sidecar_record(source: ExportSource, result: ExportResult) -> dict:
    """What the YAML beside an export says: arch, space, input, classes, normalisation, accuracy."""
    space, model = source.space, source.model
    channels = space.config.in_channels
    normalisation = None
    if source.mean is not None:
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
        "input": {
            "name": INPUT_NAME,
            "layout": "NCHW",
            "dtype": "float32",
            "shape": ["batch", channels, result.resolution, result.resolution],
            "resolution": result.resolution,
        },
        "output": {"name": OUTPUT_NAME, "shape": ["batch", model.num_classes]},
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
            {
                "result": str(source.record_path),
                "device": record.get("device"),
                "predicted_latency_ms": record.get("latency_ms"),
                "budget_ms": record.get("budget_ms"),
            }
            if record
            else None
        ),
        "parity": {
            "runtime": result.runtime,
            "batches": list(result.parity),
            "tolerance": PARITY_TOLERANCE,
            "max_abs_diff": result.max_abs_diff,
        },
        "quadnas_version": __version__,
    }


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


def read_sidecar(path: str | Path) -> dict:
    """The YAML sidecar of an export (give the export or the sidecar itself)."""
    sidecar = find_sidecar(path)
    record = _read_yaml(
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


# ---- latency on a local runtime ---------------------------------------------
@dataclass
class LatencyCheck:
    """An export's measured latency beside the table's prediction and the budget."""

    measured_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    measured_what: str
    backend: dict  # Backend.describe(): backend, version, target, threads, device, precision
    table: str | None = None
    table_provenance: str | None = None
    predicted_ms: float | None = None
    budget_ms: float | None = None
    tolerance_pct: float | None = None  # the table's calibration error (worst held-out network)
    same_machine: bool = False
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        """Prediction error relative to the measurement."""
        return None if self.predicted_ms is None else 100 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def limit_ms(self) -> float | None:
        """The budget plus the table's calibration error: the most a prediction within budget may measure."""
        if self.budget_ms is None:
            return None
        return self.budget_ms * (1 + (self.tolerance_pct or 0.0) / 100)

    @property
    def passed(self) -> bool | None:
        """Within `limit_ms`; None where no budget gate applies (no budget, or another machine's table)."""
        if not self.same_machine or self.limit_ms is None:
            return None
        return self.measured_ms <= self.limit_ms


def calibration_error_pct(meta: TableMeta) -> float | None:
    """The table's whole-network error: worst held-out network, else the mean."""
    calibration = meta.calibration
    return calibration.max_err_pct if calibration.max_err_pct is not None else calibration.mape_pct


def verify_latency(
    source: ExportSource,
    result: ExportResult,
    device: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    budget_ms: float | None = None,
    rounds: int | None = None,
    clock: str | None = None,
) -> LatencyCheck:
    """Time the export on a local runtime at batch 1 and set it beside the prediction of
    `device`'s table (default: the search's device) and the budget.

    The figure is the median call over `rounds` (default 30) rounds of >= 50 ms after a
    warm-up. The runtime, thread count, clock and budget default to the table's and the search's.
    The budget gate applies only when the table was measured with this backend, thread
    count and clock on this host (by host fingerprint); against another host's table the
    export is still timed here, and `note` says so.
    """
    device = device or source.record.get("device")
    budget_ms = budget_ms if budget_ms is not None else source.record.get("budget_ms")
    table = load_device_table(device) if device else None
    local = ("onnxruntime", "openvino", "torch")
    backend = backend or (table.meta.backend if table is not None and table.meta.backend in local else "onnxruntime")
    threads = threads or (table.meta.threads if table is not None and table.meta.threads else 1)
    clock = clock or (getattr(table.meta, "clock", None) if table is not None else None) or "wall"
    if table is not None and table.meta.resolution != result.resolution:
        raise QuadnasError(
            f"table {table.name} predicts at {table.meta.resolution} px but {result.path} was exported at "
            f"{result.resolution} px: export at {table.meta.resolution} px (drop --resolution) to verify its latency"
        )
    predicted = LatencyPredictor(table, source.space).predict(source.arch) if table is not None else None
    runtime = get_backend(backend, _torch_target(table, backend), threads, clock=clock)
    session, what = _timed_session(runtime, source, result)
    found = []
    schedule = Schedule(rounds=rounds or VERIFY_ROUNDS, round_s=ROUND_S, window=1, warmup_s=0.2)
    measure_interleaved([what], lambda _: session, schedule, lambda _, timing: found.append(timing))
    timing = found[0]
    check = LatencyCheck(
        timing.median_ms,
        timing.p10_ms,
        timing.p90_ms,
        timing.runs,
        what,
        runtime.describe(),
        budget_ms=float(budget_ms) if budget_ms is not None else None,
    )
    if table is None:
        check.note = "no latency table named (--device): measured only"
        return check
    meta = table.meta
    check.table, check.table_provenance = table.name, meta.provenance
    check.predicted_ms = predicted
    check.tolerance_pct = calibration_error_pct(meta)
    here = runtime.describe()
    measured_with = {
        "backend": meta.backend,
        "device": meta.device,
        "threads": meta.threads,
        "clock": getattr(meta, "clock", "wall"),
    }
    differs = [
        f"{key} {value!r} (here {here[key]!r})" for key, value in measured_with.items() if str(value) != str(here[key])
    ]
    host_note = foreign_host_note(meta)
    check.same_machine = not differs and host_note is None
    if differs:
        check.note = f"table {table.name} was not measured here ({', '.join(differs)}): no budget gate"
    elif host_note is not None:
        check.note = (
            f"timed on this host, but table {table.name} is not known to be this host's, so no budget gate: {host_note}"
        )
    elif source.model.num_classes != source.space.config.num_classes:
        check.note = (
            f"the table's head has {source.space.config.num_classes} classes, this network's {source.model.num_classes}"
        )
    return check


def _torch_target(table: LatencyTable | None, backend: str) -> str | None:
    """A torch table's own target (e.g. cuda) when verifying with torch and that target runs here, else None."""
    target = getattr(table.meta, "target", None) if table is not None and table.meta.backend == backend else None
    if backend != "torch" or not target or (str(target).startswith("cuda") and not torch.cuda.is_available()):
        return None
    return str(target)


def _timed_session(runtime: Backend, source: ExportSource, result: ExportResult) -> tuple[TimedSession, str]:
    """A runner of the exported file itself where the runtime reads it (batch pinned to 1),
    else of the same network exported by the backend as the profiler does."""
    pinned = runtime.work_dir / f"pinned{result.path.suffix}"
    if result.format == "onnx" and runtime.name in ("onnxruntime", "openvino"):
        import onnx

        graph = onnx.load(str(result.path))
        for value in (*graph.graph.input, *graph.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(graph, str(pinned))
        return runtime.prepare_onnx(pinned), f"{result.path.name} (batch pinned to 1)"
    if result.format == "openvino" and runtime.name == "openvino":
        ov = import_openvino()
        model = ov.Core().read_model(str(result.path))
        model.reshape(list(result.input_shape))
        ov.save_model(model, str(pinned), compress_to_fp16=False)
        return runtime.prepare_onnx(pinned), f"{result.path.name} (batch pinned to 1)"
    return (
        runtime.prepare(copy.deepcopy(source.model), result.input_shape),  # a runner may move it to a GPU
        f"the network of {result.path.name}, run by the {runtime.name} backend as the profiler runs networks",
    )
