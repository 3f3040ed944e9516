"""The cached search supernets under `runs/supernets/`: list them, clear them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from quadnas.errors import QuadnasError
from quadnas.supernet.checkpoint import SUPERNETS_DIR, CheckpointMeta, meta_of, read_checkpoint


@dataclass(frozen=True)
class CachedSupernet:
    """One checkpoint file of the cache and what it holds."""

    path: Path
    size_bytes: int
    modified: datetime
    meta: CheckpointMeta | None  # None: unreadable
    problem: str | None = None


def cached_supernets(folder: Path = SUPERNETS_DIR) -> list[CachedSupernet]:
    """Every `*.pt` in `folder`, newest first; an unreadable file is listed with its problem."""
    found = []
    for path in folder.glob("*.pt") if folder.is_dir() else []:
        stat = path.stat()
        try:
            meta, problem = meta_of(path, read_checkpoint(path)), None
        except QuadnasError as e:
            meta, problem = None, str(e)
        found.append(CachedSupernet(path, stat.st_size, datetime.fromtimestamp(stat.st_mtime), meta, problem))
    return sorted(found, key=lambda c: c.modified, reverse=True)


def clear(entries: list[CachedSupernet]) -> int:
    """Delete the entries' files and their lock files; returns the bytes freed."""
    freed = 0
    for entry in entries:
        for path in (entry.path, entry.path.with_suffix(".lock")):
            if path.exists():
                freed += path.stat().st_size
                path.unlink()
    return freed
