"""Progress of long work, reported by the library and shown by its caller.

A long-running function takes a `Progress` and reports through it: `task(what, total)`
opens a unit of counted work whose `advance(n, note)` moves it on, `note(text)` says
something once. The base class writes plain lines to the `quadnas` logger (every ~10 %
of a task or every 30 s, with rate and ETA) and passes every step to an optional
callback; the command line swaps in a rich progress bar when stderr is a terminal.
The library itself never prints.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

logger = logging.getLogger("quadnas")


@dataclass(frozen=True)
class ProgressEvent:
    """Where one task stands; what a progress callback receives after every step."""

    what: str
    done: int
    total: int
    elapsed_s: float
    unit: str = "step"
    note: str = ""
    done_before: int = 0  # steps a resumed task had finished before this run

    @property
    def rate(self) -> float:
        """Steps per second in this run (0 before its first step)."""
        return (self.done - self.done_before) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far; None before the first step."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None

    def line(self) -> str:
        """`what: 12/40 steps (30%), 2.5 steps/s, 11 s left, note`."""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"{self.what}: {self.done}/{self.total} {self.unit}s{share}, {_rate(self.rate, self.unit)}"
        eta = self.eta_s
        text += (
            f", {_duration(eta)} left"
            if eta is not None and self.done < self.total
            else f", {_duration(self.elapsed_s)} in all"
            if self.done >= self.total
            else ""
        )
        return f"{text}, {self.note}" if self.note else text


class Task:
    """One counted unit of work; `advance` after each step."""

    def __init__(self, progress: Progress, what: str, total: int, done: int, unit: str):
        self.progress, self.what, self.total, self.unit = progress, what, total, unit
        self.done = self.done_before = done
        self.began = self.last_shown = time.monotonic()
        self.shown_at_done = done

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        event = ProgressEvent(self.what, self.done, self.total, now - self.began, self.unit, note, self.done_before)
        if self.progress.callback is not None:
            self.progress.callback(event)
        step = max(1, round(self.total * self.progress.every_fraction))
        if (
            self.done >= self.total
            or self.done - self.shown_at_done >= step
            or now - self.last_shown >= self.progress.every_s
        ):
            self.last_shown, self.shown_at_done = now, self.done
            self.progress.show(event)


class Progress:
    """Reports long work as plain log lines on the `quadnas` logger, and to `callback` if given.

    `every_fraction` and `every_s` set how often a task writes a line (whichever comes first).
    """

    def __init__(
        self,
        callback: Callable[[ProgressEvent], None] | None = None,
        every_fraction: float = 0.1,
        every_s: float = 30.0,
    ):
        self.callback, self.every_fraction, self.every_s = callback, every_fraction, every_s

    @contextmanager
    def task(self, what: str, total: int, done: int = 0, unit: str = "step") -> Iterator[Task]:
        """A counted unit of work of `total` steps, `done` of them finished before (resumed work)."""
        task = Task(self, what, total, done, unit)
        logger.info("%s: %d %ss%s", what, total, unit, f", {done} done before" if done else "")
        yield task

    def note(self, text: str) -> None:
        """Something the user should know once (what is about to take long, a fallback taken)."""
        logger.info("note: %s", text)

    def show(self, event: ProgressEvent) -> None:
        """Write one progress line."""
        logger.info("%s", event.line())


class Silent(Progress):
    """Shows no task (its notes still go to the logger): work too short to show, or a rank other than 0's."""

    def show(self, event: ProgressEvent) -> None:
        pass

    @contextmanager
    def task(self, what: str, total: int, done: int = 0, unit: str = "step") -> Iterator[Task]:
        yield Task(self, what, total, done, unit)


@contextmanager
def stderr_logging(level: int = logging.INFO) -> Iterator[None]:
    """Plain `quadnas` log lines on stderr for the duration, unless logging is already configured.

    The Python API wraps long calls in this, so a caller who set up no logging still sees
    progress; a caller with handlers of their own sees it there instead. Nothing is left behind.
    """
    if logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[quadnas] %(message)s"))
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _rate(rate: float, unit: str) -> str:
    if rate >= 1 or rate == 0:
        return f"{rate:.1f} {unit}s/s"
    return f"{1 / rate:.1f} s/{unit}"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
