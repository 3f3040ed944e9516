"""Folders that ship with quadnas: `search_spaces/`, `latency_tables/` and `datasets/`, and the default space.

In a source checkout they sit at the repository root, beside the package; a wheel
installs them inside it (`quadnas/search_spaces/`, see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
DEFAULT_SPACE = "quadranet-t"  # the shipped search space a command uses when none is named


def shipped_dir(name: str) -> Path:
    """The shipped folder `name`: inside the installed package if it is there, else beside it."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name
