"""How the command line shows the library's progress: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from quadnas.progress import Progress, Task, logger

if TYPE_CHECKING:
    from rich.progress import Progress as Bars
    from rich.progress import TaskID


class _BarTask(Task):
    """A task drawn as one rich progress bar."""

    def __init__(self, bar: Bars, task_id: TaskID, progress: Progress, what: str, total: int, done: int, unit: str):
        super().__init__(progress, what, total, done, unit)
        self.bar, self.task_id = bar, task_id

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        self.bar.update(self.task_id, advance=n, note=note)


class RichProgress(Progress):
    """Progress bars and notes on a terminal (stderr)."""

    def __init__(self, console: Console):
        super().__init__()
        self.console = console

    @contextmanager
    def task(self, what: str, total: int, done: int = 0, unit: str = "step") -> Iterator[Task]:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bars

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
        )
        with Bars(*columns, console=self.console, refresh_per_second=2) as bar:
            task_id = bar.add_task(what, total=total, completed=done, note="")
            yield _BarTask(bar, task_id, self, what, total, done, unit)

    def note(self, text: str) -> None:
        note(self.console, text)


def progress_for(console: Console) -> Progress:
    """Rich bars when `console` is a terminal; otherwise plain lines (every ~10 % or 30 s) via logging.

    Under `quadnas -q` (the `quadnas` logger above INFO) neither shows: the plain lines are not logged."""
    return RichProgress(console) if console.is_terminal and logger.isEnabledFor(logging.INFO) else Progress()


def note(console: Console, text: str) -> None:
    """`note: text` on `console`, unless `quadnas -q` hides notes."""
    if logger.isEnabledFor(logging.INFO):
        console.print(f"[yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)


class _PlainFormatter(logging.Formatter):
    """The message alone; warnings and errors say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


@contextmanager
def log_to(console: Console, level: int = logging.INFO) -> Iterator[None]:
    """For the duration, the `quadnas` logger's records go to `console` (rich on a terminal, plain
    lines otherwise); the logger is left as it was afterwards."""
    if console.is_terminal:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=console, show_time=False, show_path=False, show_level=False, markup=False
        )
    else:
        handler = logging.StreamHandler(console.file)
    handler.setFormatter(_PlainFormatter())
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
