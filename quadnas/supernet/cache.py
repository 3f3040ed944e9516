"""The supernets under `runs/supernets/`: the searches' cache (`*-search-*.pt`) and `quadnas train`'s
default checkpoints; list them, clear them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from quadnas.errors import QuadnasError
from quadnas.supernet.checkpoint import SUPERNETS_DIR, CheckpointMeta, meta_of, read_checkpoint


@dataclass(frozen=True)
class CachedSupernet:
    """One checkpoint file of the cache and what it holds."""

    path: Path
    size_bytes: int
    modified: datetime
    meta: CheckpointMeta | None  # None: not a readable quadnas checkpoint

    @property
    def is_search_cache(self) -> bool:
        """Trained by a search for its cache (not a `quadnas train` checkpoint)."""
        return "-search-" in self.path.name


def cached_supernets(folder: Path = SUPERNETS_DIR) -> list[CachedSupernet]:
    """Every `*.pt` in `folder`, newest first; an unreadable file is listed without metadata."""
    found = []
    for path in folder.glob("*.pt") if folder.is_dir() else []:
        stat = path.stat()
        try:
            meta = meta_of(path, read_checkpoint(path, mmap=True))
        except QuadnasError:
            meta = None
        found.append(CachedSupernet(path, stat.st_size, datetime.fromtimestamp(stat.st_mtime), meta))
    return sorted(found, key=lambda c: c.modified, reverse=True)


def clear(entries: list[CachedSupernet]) -> tuple[int, list[CachedSupernet]]:
    """Delete the entries' files and lock files, except those a search is training now.

    Returns the bytes freed and the entries kept because their lock is held.
    """
    freed, busy = 0, []
    for entry in entries:
        lock = FileLock(entry.path.with_suffix(".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            busy.append(entry)
            continue
        try:
            freed += entry.path.stat().st_size
            entry.path.unlink()
        finally:
            lock.release()
            entry.path.with_suffix(".lock").unlink(missing_ok=True)
    return freed, busy
