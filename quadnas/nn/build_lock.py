"""An inter-process lock for a one-time build: it says who holds it, and a dead holder frees it.

The lock is `filelock.FileLock` (`flock` on Linux and macOS, `LockFileEx` on Windows), which the
operating system releases when its holder exits in any way, kill -9, an OOM kill and Ctrl-\\
included. Beside it a small JSON record names the holder (pid, host, start) for whoever waits; a
record still there when the lock is next taken was left by a holder that died holding it.

A waiter says so at once and every `notice_every` seconds through the `quadnas` logger, naming the
holder, and gives up after `timeout` seconds with `BuildLockTimeout`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import filelock

logger = logging.getLogger(__name__)


class BuildLockTimeout(RuntimeError):
    """The lock stayed held for the whole wait."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a build lock."""

    pid: int
    host: str
    started: float  # seconds since the epoch

    def __str__(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on {self.host}, since {since}"


def holder_path(lock: Path) -> Path:
    """The record naming `lock`'s holder."""
    return lock.with_name(lock.name + ".holder.json")


def read_holder(lock: Path) -> Holder | None:
    """The holder recorded beside `lock`, or None where there is no readable record."""
    try:
        fields = json.loads(holder_path(lock).read_text())
        return Holder(int(fields["pid"]), str(fields["host"]), float(fields["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _acquire(lock: filelock.BaseFileLock, path: Path, what: str, timeout: float, notice_every: float) -> None:
    """Take `lock`, saying whom it waits for at once and every `notice_every` s; at most `timeout` s."""
    start = time.monotonic()
    next_notice = start  # the first failed try says so at once
    while True:
        now = time.monotonic()
        try:
            lock.acquire(timeout=max(0.0, min(start + timeout, next_notice) - now))
            return
        except filelock.Timeout:
            pass
        now = time.monotonic()
        holder = read_holder(path) or "another process"
        if now - start >= timeout:
            raise BuildLockTimeout(
                f"waited {timeout:.0f} s for {what}, held by {holder} (lock {path}); if that process is stuck, end it"
            ) from None
        if now >= next_notice:
            logger.warning(
                "quadnas: waiting for %s, held by %s (at most %.0f s more; lock %s)",
                what,
                holder,
                start + timeout - now,
                path,
            )
            next_notice = now + notice_every


@contextlib.contextmanager
def build_lock(path: Path, what: str, timeout: float, notice_every: float = 30.0) -> Iterator[Holder | None]:
    """Hold the lock file `path` within; yields the holder an earlier, dead holder left recorded (else None).

    `what` names what the lock guards in the waiting lines ("the fused op's build").
    Raises `BuildLockTimeout` after `timeout` seconds of waiting.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    _acquire(lock, path, what, timeout, notice_every)
    try:
        left_behind = read_holder(path)  # the lock was free, so whoever wrote this died holding it
        record = holder_path(path)
        me = Holder(os.getpid(), socket.gethostname(), time.time())
        scratch = record.with_name(f"{record.name}.{me.pid}")
        scratch.write_text(json.dumps(asdict(me)))
        os.replace(scratch, record)  # waiters never read a half-written record
        try:
            yield left_behind
        finally:
            record.unlink(missing_ok=True)
    finally:
        lock.release()
