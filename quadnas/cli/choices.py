"""argparse `choices` that live in a heavy module, read only when argparse needs them.

The clock names (`quadnas.latency.measure.CLOCK_CHOICES`) live in the standalone kit runner, which
imports numpy; the commands name them without importing it at start-up. Give such an option a
`metavar` (argparse lists the choices in the usage line otherwise, on every parse) and name
the choices with `%(choices)s` in its help.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any


class LazyChoices:
    """The sequence `module.name`, imported on the first membership test or iteration."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __contains__(self, item: object) -> bool:
        return item in self.values()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self.values())


def clock_choices() -> LazyChoices:
    """`quadnas.latency.measure.CLOCK_CHOICES`: auto, wall, cpu."""
    return LazyChoices("quadnas.latency.measure", "CLOCK_CHOICES")
