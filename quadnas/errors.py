"""User-facing errors: shown as one line, exit code 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class QuadnasError(Exception):
    """A mistake the user can fix; the message names the problem and the fix."""


@dataclass(frozen=True)
class Invalid:
    """The first problem a pydantic validation found, for a one-line `QuadnasError`."""

    loc: tuple[str, ...]  # the path to the bad value: ("stages", "0", "dim")
    message: str
    kind: str  # pydantic's error type: "missing", "extra_forbidden", ...
    value: object

    @classmethod
    def of(cls, error: ValidationError) -> Invalid:
        first = error.errors()[0]
        return cls(tuple(str(p) for p in first["loc"]), first["msg"], first["type"], first.get("input"))

    @property
    def key(self) -> str:
        """The dotted path: `stages.0.dim`."""
        return ".".join(self.loc)


class Stopped(QuadnasError):
    """Training stopped on a signal (SIGTERM, SIGUSR1) after writing a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
