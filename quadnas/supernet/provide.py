"""A trained supernet for a search: the given checkpoint, the cached one, or a fresh training."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from quadnas.accelerator import torch_device
from quadnas.data import Dataset
from quadnas.progress import Progress
from quadnas.space import SearchSpace
from quadnas.supernet.checkpoint import (
    SUPERNETS_DIR,
    check_data,
    check_writable,
    default_checkpoint_path,
    load_checkpoint,
    meta_of,
    read_checkpoint,
    supernet_from_state,
)
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.supernet import Supernet
from quadnas.supernet.train import resume_candidates, train_supernet

LOCK_NOTE_S = 30.0  # while waiting for another worker's lock, say so this often
PROXY_HINT = (
    "this narrow proxy supernet trains fast but ranks archs coarsely where they differ much; "
    "--train-width 0.5 or 1 ranks them better at about 2x or 8x the training time (docs/guide.md)"
)


@contextmanager
def file_lock(path: Path, progress: Progress) -> Iterator[None]:
    """An exclusive lock, so workers started together train the cached supernet once.

    Waiting for a lock another process holds is reported at once and every 30 s.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    began, timeout = time.monotonic(), 0.0
    while True:
        try:
            lock.acquire(timeout=timeout)
            break
        except Timeout:
            progress.note(
                f"waiting for another process that trains this supernet "
                f"({time.monotonic() - began:.0f} s so far; lock {path})"
            )
            timeout = LOCK_NOTE_S
    try:
        yield
    finally:
        lock.release()


def provide_supernet(
    space: SearchSpace,
    dataset: Dataset,
    checkpoint: str | Path | None,
    epochs: int | None,
    progress: Progress | None = None,
    device: str = "cpu",
    cache_dir: Path = SUPERNETS_DIR,
    width: float | None = None,
) -> tuple[Supernet, Path]:
    """Load `checkpoint`, or the cache for (space, data) in `cache_dir`, training (or finishing) it first
    on `device` (`epochs` and `width` override the search recipe's); the supernet comes back on `device`."""
    if checkpoint is not None:
        supernet, meta = load_checkpoint(checkpoint, space)
        check_data(meta, dataset, f"pass --data {meta.dataset.name} or another --checkpoint")
        return supernet.to(torch_device(device)), Path(checkpoint)
    overrides = {"epochs": epochs, "width": width}
    config = TrainConfig.for_search(
        dataset.name, resolution=dataset.resolution, **{k: v for k, v in overrides.items() if v is not None}
    )
    path = check_writable(
        cache_path(space, dataset, config, cache_dir),  # an unwritable folder: one line, before the lock
        f"pass --runs-dir with a writable folder (the cache goes to {cache_dir}/ now), or pass --checkpoint",
    )
    progress = progress or Progress()
    with file_lock(path.with_suffix(".lock"), progress):
        state = read_checkpoint(path) if path.exists() else None  # read once
        if state is not None and meta_of(path, state).finished:
            supernet, _ = supernet_from_state(path, state, space)
            return supernet.to(torch_device(device)), path
        verb = "finishing" if resume_candidates(path) else "training"
        del state
        progress.note(
            f"{verb} the supernet for space '{space.name}' on '{dataset.name}' "
            f"({config.epochs} epochs, width {config.width:g}); "
            f"cached at {path}, so the next search starts at once"
        )
        if width is None and config.width < 0.5:
            progress.note(PROXY_HINT)
        supernet = train_supernet(
            space,
            dataset,
            config,
            path,
            resume=verb == "finishing",
            progress=progress,
            device=device,
            resume_hint="run the same search again: it continues this supernet's training",
        )
    return supernet, path


def cache_path(space: SearchSpace, dataset: Dataset, config: TrainConfig, folder: Path = SUPERNETS_DIR) -> Path:
    """The cached supernet of (space, data, recipe) in `folder`: a changed recipe trains a new one."""
    recipe = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:8]
    default = default_checkpoint_path(space, dataset, folder)
    return default.with_name(f"{default.stem}-search-{recipe}{default.suffix}")
