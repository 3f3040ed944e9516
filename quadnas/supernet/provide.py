"""A trained supernet for a search: the given checkpoint, the cached one, or a fresh training."""

from __future__ import annotations

import fcntl
import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from quadnas.accelerator import torch_device
from quadnas.data import Dataset
from quadnas.errors import QuadnasError
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import default_checkpoint_path, load_checkpoint, meta_of, read_checkpoint
from quadnas.supernet.supernet import Supernet
from quadnas.supernet.train import TrainConfig, train_supernet


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock, so workers started together train the cached supernet once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def provide_supernet(
    space: SearchSpace,
    dataset: Dataset,
    checkpoint: str | Path | None,
    epochs: int | None,
    progress: bool,
    notify: Callable[[str], None],
    device: str = "cpu",
) -> tuple[Supernet, Path]:
    """Load `checkpoint`, or the cache for (space, data), training (or finishing) it first on `device`;
    the supernet comes back on `device`."""
    if checkpoint is not None:
        supernet, meta = load_checkpoint(checkpoint, space)
        _check_data(meta.dataset.fingerprint, meta.dataset.name, dataset, Path(checkpoint))
        return supernet.to(torch_device(device)), Path(checkpoint)
    config = TrainConfig.for_search(resolution=dataset.resolution)
    if epochs is not None:
        config = config.model_copy(update={"epochs": epochs})
    path = cache_path(space, dataset, config)
    with file_lock(path.with_suffix(".lock")):
        meta = meta_of(path, read_checkpoint(path)) if path.exists() else None
        if meta is None or not meta.finished:
            verb = "finishing" if meta else "training"
            notify(f"{verb} the supernet for space '{space.name}' on '{dataset.name}' ({config.epochs} epochs); "
                   f"cached at {path}, so the next search starts at once")
            train_supernet(space, dataset, config, path, resume=meta is not None, progress=progress, device=device)
    supernet, _ = load_checkpoint(path, space)
    return supernet.to(torch_device(device)), path


def cache_path(space: SearchSpace, dataset: Dataset, config: TrainConfig) -> Path:
    """The cached supernet of (space, data, recipe): a changed recipe trains a new one."""
    recipe = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:8]
    default = default_checkpoint_path(space, dataset)
    return default.with_name(f"{default.stem}-search-{recipe}{default.suffix}")


def _check_data(fingerprint: str, name: str, dataset: Dataset, path: Path) -> None:
    if fingerprint != dataset.fingerprint:
        raise QuadnasError(
            f"checkpoint {path} was trained on data '{name}' ({fingerprint}), not '{dataset.name}' "
            f"({dataset.fingerprint}) at this resolution and split: pass --data {name} or another --checkpoint"
        )
