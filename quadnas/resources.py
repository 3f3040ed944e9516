"""Folders that ship with quadnas (`search_spaces/`, `latency_tables/`, `datasets/`), the default space, spaces by name.

In a source checkout they sit at the repository root, beside the package; a wheel
installs them inside it (`quadnas/search_spaces/`, see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

from quadnas.errors import QuadnasError

_PACKAGE = Path(__file__).resolve().parent
DEFAULT_SPACE = "quadranet-t"  # the shipped search space a command uses when none is named


def shipped_dir(name: str) -> Path:
    """The shipped folder `name`: inside the installed package if it is there, else beside it."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


SPACES_DIR = shipped_dir("search_spaces")


def shipped_space(path_or_name: str | Path | None) -> Path:
    """A search space's YAML: the path given, or the shipped space of that name (the default one for None)."""
    if path_or_name is None:
        path_or_name = DEFAULT_SPACE
    path = Path(path_or_name)
    if path.is_file():
        return path
    shipped = SPACES_DIR / f"{path_or_name}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SPACES_DIR.glob("*.yaml")))
    raise QuadnasError(f"search space '{path_or_name}' not found: give a YAML path or one of {names}")
