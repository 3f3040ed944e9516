"""Search workers on one host share its cores: each runs torch on its share of them.

Every search registers a file named by its process id in a folder of the host's temporary directory
while its study runs. Before each trial it counts the live ones (a file whose process is gone, killed
or crashed, is removed) and runs torch on `cores // workers` threads, at least one and never more than
it had. Workers that each keep as many threads as the host has cores spend their time waiting on one
another's thread pools, so that more workers run fewer trials (docs/benchmarks.md, "Many workers on a
quiet host"). Where the folder cannot be written, the search runs as if it were alone.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from types import TracebackType

import torch


def default_folder() -> Path:
    """Where this user's searches on this host register (one folder per user: another's is not writable).
    The user id, not the name: a container's user often has no name to look up."""
    user = str(os.getuid()) if hasattr(os, "getuid") else getpass.getuser()
    return Path(tempfile.gettempdir()) / f"quadnas-search-workers-{user}"


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the platform tells it, else the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


class HostShare:
    """This process among the host's search workers, from `with` to its end; torch's thread count is restored
    on leaving."""

    threads_before: int  # torch's threads on entering: the most this worker takes, restored on leaving

    def __init__(self, folder: Path | None = None):
        self.folder = folder or default_folder()
        self.me = self.folder / str(os.getpid())
        self.registered = False

    def __enter__(self) -> HostShare:
        self.threads_before = torch.get_num_threads()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.me.touch()
            self.registered = True
        except OSError:  # a read-only or full temporary directory: share nothing rather than stop the search
            pass
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.registered:
            self.me.unlink(missing_ok=True)
        torch.set_num_threads(self.threads_before)

    def workers(self) -> int:
        """Searches registered on this host whose process is alive, this one included."""
        if not self.registered:
            return 1
        count = 0
        for file in self.folder.iterdir():
            if not file.name.isdigit():
                continue
            if _alive(int(file.name)):
                count += 1
            else:
                file.unlink(missing_ok=True)
        return max(count, 1)

    def size_threads(self) -> int:
        """Set torch's threads to this worker's share of the cores; the count set."""
        threads = max(1, min(self.threads_before, usable_cores() // self.workers()))
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return threads
