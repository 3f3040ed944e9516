"""Supernet checkpoints: atomic save, validated load, default cache path, content hash.

A checkpoint is one `torch.save` file holding the supernet weights, the training
state (optimizer, scheduler, scaler, RNG states, steps done, the running epoch's totals), the
steps and finished epochs, the training settings,
and what it was trained for: the space (name, fingerprint, config) and the data
(name, fingerprint, classes, normalisation, resolution).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from quadnas.errors import QuadnasError
from quadnas.portable.files import atomic_save
from quadnas.space import SearchSpace
from quadnas.supernet.supernet import Supernet

if TYPE_CHECKING:
    from quadnas.data import Dataset

FORMAT_VERSION = 2  # 2: step-level training state; data fingerprints from manifests (format 1 is refused)
SUPERNETS_DIR = Path("runs") / "supernets"


@dataclass(frozen=True)
class DatasetInfo:
    """What a supernet was trained on: enough to check data and preprocess new inputs."""

    name: str
    source: str
    fingerprint: str
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resolution: int

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetInfo:
        return cls(
            dataset.name,
            dataset.source,
            dataset.fingerprint,
            tuple(dataset.classes),
            tuple(dataset.mean),
            tuple(dataset.std),
            dataset.resolution,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DatasetInfo:
        return cls(**{**raw, **{k: tuple(raw[k]) for k in ("classes", "mean", "std")}})

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything in a checkpoint except tensors and training state."""

    path: Path
    space_name: str
    space_fingerprint: str
    dataset: DatasetInfo
    config: dict[str, Any]
    epoch: int

    @property
    def epochs(self) -> int:
        return int(self.config["epochs"])

    @property
    def finished(self) -> bool:
        return self.epoch >= self.epochs


def default_checkpoint_path(space: SearchSpace, dataset: Dataset, folder: Path = SUPERNETS_DIR) -> Path:
    """`folder/{space}-{fp8}-{data}-{fp8}.pt` (default `runs/supernets/`): keyed by space and data."""
    name = f"{space.name}-{space.fingerprint()[:8]}-{dataset.name}-{dataset.fingerprint[:8]}.pt"
    return folder / name


def check_writable(path: str | Path, fix: str = "give a writable --out path") -> Path:
    """`path` as a checkpoint file path whose folder exists (created if needed), or a one-line QuadnasError."""
    path = Path(path)
    if path.is_dir():
        raise QuadnasError(f"checkpoint path {path} is a folder: give a file path, e.g. {path / 'supernet.pt'}")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise QuadnasError(f"cannot write checkpoint {path}: {blocking} is a file, not a folder: {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise QuadnasError(f"cannot create the folder of checkpoint {path}: {e.strerror or e}: {fix}") from None
    return path


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a write killed half-way leaves the previous checkpoint intact."""
    path = check_writable(path)
    try:
        atomic_save(path, lambda f: torch.save({"format": FORMAT_VERSION, **state}, f))
    except OSError as e:
        raise QuadnasError(f"cannot write checkpoint {path}: {e.strerror or e}: give a writable --out path") from None


def checkpoint_state(
    model: Supernet,
    dataset: DatasetInfo,
    config: dict[str, Any],
    epoch: int,
    training: dict[str, Any],
    step: int | None = None,
) -> dict[str, Any]:
    """The dictionary `save_checkpoint` writes; `training` holds optimizer, scheduler and RNG states
    (empty once finished), `step` the steps done."""
    space = model.space
    return {
        "model": model.state_dict(),
        "space": {"name": space.name, "fingerprint": space.fingerprint(), "config": space.config.model_dump()},
        "dataset": asdict(dataset),
        "config": dict(config),
        "epoch": epoch,
        "step": step,
        "training": training,
    }


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The raw checkpoint dictionary; an unreadable file is one-line `QuadnasError`.

    `mmap` maps the tensors instead of reading them: for looking at the metadata only.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise QuadnasError(f"checkpoint {path} does not exist: train one with `quadnas train --out {path}`") from None
    except Exception as e:  # torch raises many types for corrupt or foreign files
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QuadnasError(
            f"cannot read checkpoint {path} ({reason}): delete it and retrain with `quadnas train --out {path}`"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("format"), int) and state["format"] < FORMAT_VERSION:
        raise QuadnasError(
            f"{path} is a supernet checkpoint of an older quadnas (format {state['format']}, now "
            f"{FORMAT_VERSION}): delete it and retrain with `quadnas train --out {path}`"
        )
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise QuadnasError(
            f"{path} is not a quadnas supernet checkpoint (format {FORMAT_VERSION}): "
            f"retrain with `quadnas train --out {path}`"
        )
    return state


def meta_of(path: str | Path, state: dict[str, Any]) -> CheckpointMeta:
    """The `CheckpointMeta` of a raw checkpoint dictionary."""
    return CheckpointMeta(
        path=Path(path),
        space_name=state["space"]["name"],
        space_fingerprint=state["space"]["fingerprint"],
        dataset=DatasetInfo.from_dict(state["dataset"]),
        config=dict(state["config"]),
        epoch=int(state["epoch"]),
    )


def check_space(meta: CheckpointMeta, space: SearchSpace) -> None:
    """Refuse a checkpoint trained for another space (by fingerprint)."""
    if meta.space_fingerprint != space.fingerprint():
        raise QuadnasError(
            f"checkpoint {meta.path} was trained for space '{meta.space_name}' "
            f"(fingerprint {meta.space_fingerprint}), not '{space.name}' ({space.fingerprint()}): "
            f"pass --space {meta.space_name} or retrain"
        )


def check_data(meta: CheckpointMeta, dataset: Dataset, fix: str) -> None:
    """Refuse a checkpoint trained on other data (content, resolution or split, by fingerprint)."""
    if meta.dataset.fingerprint != dataset.fingerprint:
        raise QuadnasError(
            f"checkpoint {meta.path} was trained on data '{meta.dataset.name}' (fingerprint "
            f"{meta.dataset.fingerprint}), not '{dataset.name}' ({dataset.fingerprint}) at this resolution "
            f"and split: {fix}"
        )


def load_checkpoint(path: str | Path, space: SearchSpace) -> tuple[Supernet, CheckpointMeta]:
    """The supernet saved at `path` (in eval mode) and its metadata; the space must match."""
    return supernet_from_state(path, read_checkpoint(path), space)


def supernet_from_state(path: str | Path, state: dict[str, Any], space: SearchSpace) -> tuple[Supernet, CheckpointMeta]:
    """`load_checkpoint` for a checkpoint dictionary already read from `path`."""
    meta = meta_of(path, state)
    check_space(meta, space)
    model = Supernet(
        space,
        meta.dataset.num_classes,
        memory_efficient=bool(meta.config["memory_efficient"]),
        width=float(meta.config.get("width", 1.0)),
    )
    model.load_state_dict(state["model"])
    return model.eval(), meta


def checkpoint_hash(path: str | Path) -> str:
    """First 16 hex digits of the file's SHA-256, for result provenance."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
