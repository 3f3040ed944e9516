"""What is exported: one arch as a standalone QuadraNet, and what a deployment needs to know about it.

`build_model` turns a search's `best.yaml` (a `SearchRecord`; or an arch text and a space) into an `ExportSource`,
with weights inherited from the supernet checkpoint, or freshly initialised for latency work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from quadnas.errors import QuadnasError
from quadnas.latency.devices import resolve_device
from quadnas.nn import QuadraNet
from quadnas.record import DeviceRecord, SearchRecord
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
    record: SearchRecord | None = None  # the search result it was built from; None for an arch given as text
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


def searched_device(record: SearchRecord, device: str | None) -> DeviceRecord | None:
    """The record's entry for `device` (the first device when None): the one naming it or the same table
    file; None when the search did not run under it."""
    if device is None:
        return record.devices[0]
    wanted = _table_file(device)
    for entry in record.devices:
        if entry.device == device or (wanted is not None and _table_file(entry.device) == wanted):
            return entry
    return None


def _table_file(device: str) -> Path | None:
    """The table file a device name resolves to here; None when it resolves to none."""
    try:
        return resolve_device(device).resolve()
    except QuadnasError:
        return None


def load_space(space: SearchSpace | str | Path | None, record: SearchRecord | None, where: str) -> SearchSpace:
    """The space given, else the one the record names; its fingerprint must match the record's."""
    known = record.space if record is not None else None
    if not isinstance(space, SearchSpace):
        space = SearchSpace.load(space or (None if known is None else known.path or known.name))
    if known is not None and known.fingerprint and known.fingerprint != space.fingerprint():
        raise QuadnasError(
            f"{where} was searched in space '{known.name}' (fingerprint {known.fingerprint}) but "
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
    record = SearchRecord.read(text) if is_record else None
    record_path = Path(text) if is_record else None
    space = load_space(space, record, text if is_record else "the arch")
    arch = space.parse(text) if record is None else space.check(record.arch)
    if init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = QuadraNet(space, arch).eval()
        return ExportSource(model, space, arch, "random", record=record, record_path=record_path)
    return _inherit(space, arch, record, record_path, checkpoint, seed)


def _inherit(
    space: SearchSpace,
    arch: Arch,
    record: SearchRecord | None,
    record_path: Path | None,
    checkpoint: str | Path | None,
    seed: int,
) -> ExportSource:
    searched = record.supernet if record is not None else None
    path = checkpoint or (searched and searched.checkpoint)
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
    same_as_search = searched is not None and sha == searched.sha256_16
    if searched is not None and checkpoint is None and not same_as_search:
        raise QuadnasError(
            f"supernet checkpoint {path} changed since the search (sha256 {sha}, the search used "
            f"{searched.sha256_16}): its accuracy no longer holds; rerun the search or pass --checkpoint"
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
    if same_as_search and record is not None and record.accuracy is not None:
        source.accuracy = record.accuracy
        source.accuracy_on = (
            f"validation split of {data.source} at {data.resolution} px, weights inherited from the supernet"
        )
    return source


def _from_proxy(
    space: SearchSpace,
    arch: Arch,
    record: SearchRecord | None,
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
