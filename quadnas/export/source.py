"""What is exported: one arch as a standalone QuadraNet, and what a deployment needs to know about it.

`build_model` turns a search's `best.yaml` (or an arch text and a space) into an `ExportSource`,
with weights inherited from the supernet checkpoint, or freshly initialised for latency work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from quadnas.errors import QuadnasError
from quadnas.latency.devices import resolve_device
from quadnas.nn import QuadraNet
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.checkpoint import CheckpointMeta, checkpoint_hash, load_checkpoint

Init = Literal["inherit", "random"]
INITS: tuple[str, ...] = ("inherit", "random")


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
    record: dict[str, Any] = field(default_factory=dict)
    record_path: Path | None = None
    proxy_width: float | None = None  # the width of the proxy supernet that ranked the arch, if one did


def read_yaml(path: Path, if_missing: str, what: str) -> Any:  # the parsed YAML, of any shape
    """Parsed YAML; a missing or unreadable file is one line naming it and the fix."""
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise QuadnasError(f"{path} does not exist: {if_missing}") from None
    except (OSError, yaml.YAMLError) as e:
        raise QuadnasError(f"cannot read {what}: {e}") from None


def read_record(path: str | Path) -> dict[str, Any]:
    """A search's `best.yaml`, checked for the keys export needs."""
    path = Path(path)
    record = read_yaml(
        path, "give the best.yaml of a search (runs/<study>/best.yaml) or --arch TEXT --space PATH", str(path)
    )
    if not (isinstance(record, dict) and isinstance(record.get("arch"), str) and isinstance(record.get("space"), dict)):
        raise QuadnasError(f"{path} is not a search result (no 'arch' and 'space' keys): give runs/<study>/best.yaml")
    return record


def searched_budget_ms(record: dict[str, Any], device: str | None) -> float | None:
    """The budget the search set on `device` (the record's first device when None).

    A record of several devices (`devices`) gives the budget of the entry naming the same table,
    None when none does; a single-device record gives its one budget.
    """
    entries = record.get("devices")
    if not isinstance(entries, list) or device is None:
        budget = record.get("budget_ms")
        return None if budget is None else float(budget)
    wanted = _table_file(device)
    for entry in entries:
        if entry.get("device") == device or (wanted is not None and _table_file(entry.get("device")) == wanted):
            return float(entry["budget_ms"])
    return None


def _table_file(device: object) -> Path | None:
    """The table file a device name resolves to here; None when it resolves to none."""
    try:
        return resolve_device(str(device)).resolve()
    except QuadnasError:
        return None


def load_space(space: SearchSpace | str | Path | None, record: dict[str, Any], where: str) -> SearchSpace:
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
    space: SearchSpace,
    arch: Arch,
    record: dict[str, Any],
    record_path: Path | None,
    checkpoint: str | Path | None,
    seed: int,
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
    record: dict[str, Any],
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
