"""The clocks a call is timed on, and the loop that times calls.

'wall' is latency; 'cpu' (the process's CPU time) equals it for one thread on a CPU and ignores the time
other programs take the core away, so it is steady on a busy machine. 'auto' picks cpu where it equals
latency (1 thread on a CPU target), else wall. Standard library only: the command line names the clocks
without importing numpy.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import KitError

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_CHOICES = ("auto", *CLOCKS)


def check_clock(clock: str, threads: int, target: str | None) -> str:
    """The clock ('wall' or 'cpu') that `clock` means for this setup, or a KitError."""
    if clock not in CLOCK_CHOICES:
        raise KitError(f"unknown clock '{clock}': use one of {', '.join(CLOCK_CHOICES)}")
    cpu_ok = threads == 1 and (target or "CPU").upper() == "CPU"
    if clock == "cpu" and not cpu_ok:
        raise KitError("the cpu clock equals latency only with 1 thread on a CPU target: use the wall clock")
    if clock == "auto":  # some systems (Windows) count CPU time in 15 ms steps: too coarse for ops
        fine = time.get_clock_info("process_time").resolution <= 1e-6
        return "cpu" if cpu_ok and fine else "wall"
    return clock


def timed_calls(run: Callable[[], object], n: int, clock: Callable[[], float]) -> list[float]:
    """Call `run` `n` times; the seconds each call took on `clock`."""
    times = []
    for _ in range(n):
        start = clock()
        run()
        times.append(clock() - start)
    return times
