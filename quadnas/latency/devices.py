"""Finding latency tables by device name, alias or path.

Shipped tables live in `latency_tables/` (at the repository root, or inside an installed wheel); a user's own tables
(what `quadnas profile --name NAME` writes) in `user_tables_dir()`, which wins on a
name clash so a measured table replaces a shipped estimate.
"""

from __future__ import annotations

import os
from pathlib import Path

from quadnas.errors import QuadnasError
from quadnas.resources import shipped_dir
from quadnas.latency.table import LatencyTable

SHIPPED_TABLES_DIR = shipped_dir("latency_tables")
TABLES_ENV = "QUADNAS_TABLES"


def user_tables_dir() -> Path:
    """Where user tables live: `$QUADNAS_TABLES`, else `~/.quadnas/latency_tables`."""
    override = os.environ.get(TABLES_ENV)
    return Path(override).expanduser() if override else Path.home() / ".quadnas" / "latency_tables"


def table_dirs() -> list[Path]:
    """Search order: the user dir, then the shipped dir."""
    return [user_tables_dir(), SHIPPED_TABLES_DIR]


def table_paths() -> list[Path]:
    """Every table file, one per name (a user table hides a shipped one of the same name)."""
    by_name: dict[str, Path] = {}
    for directory in table_dirs():
        for path in sorted(directory.glob("*.csv")) if directory.is_dir() else []:
            by_name.setdefault(path.stem, path)
    return list(by_name.values())


def resolve_device(name_or_path: str | Path) -> Path:
    """The table file for a CSV path, a table name (file stem) or an alias from a table header."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".csv" or os.sep in text:
        raise QuadnasError(f"latency table {path} does not exist: give an existing CSV path or a device "
                           f"name ({_known()})")
    for directory in table_dirs():
        candidate = directory / f"{text}.csv"
        if candidate.is_file():
            return candidate
    for candidate in table_paths():
        if text in LatencyTable.read_meta(candidate).aliases:
            return candidate
    raise QuadnasError(f"unknown device '{text}': use one of {_known()}, a CSV path, or measure this "
                       f"machine with `quadnas profile --name {text}`")


def load_device_table(name_or_path: str | Path) -> LatencyTable:
    """Resolve and read a table."""
    return LatencyTable.read(resolve_device(name_or_path))


def list_tables() -> list[LatencyTable]:
    """Every table, user tables first; a corrupted one is an error naming the file."""
    return [LatencyTable.read(path) for path in table_paths()]


def _known() -> str:
    names = []
    for path in table_paths():
        try:
            aliases = LatencyTable.read_meta(path).aliases
        except QuadnasError:
            aliases = []
        names.append(path.stem + (f" ({', '.join(aliases)})" if aliases else ""))
    return ", ".join(names) or "none (no tables found)"
