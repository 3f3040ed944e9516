"""Finding latency tables by device name, alias or path.

Shipped tables live in `latency_tables/` (at the repository root, or inside an installed wheel); a user's own tables
(what `quadnas profile --name NAME` writes) in `user_tables_dir()`, which wins on a
name clash so a measured table replaces a shipped estimate. A file that cannot be read
affects only its own name: looking up other names warns (on the `quadnas` logger) and goes on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from quadnas.errors import QuadnasError
from quadnas.latency.header import TableMeta
from quadnas.latency.names import user_tables_dir
from quadnas.latency.table import LatencyTable
from quadnas.resources import shipped_dir

SHIPPED_TABLES_DIR = shipped_dir("latency_tables")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableFile:
    """One table file: the table read from it, or the one-line reason it cannot be read."""

    path: Path
    table: LatencyTable | None = None
    error: str | None = None

    @property
    def shipped(self) -> bool:
        return self.path.parent == SHIPPED_TABLES_DIR


def table_dirs() -> list[Path]:
    """Search order: the user dir, then the shipped dir."""
    return [user_tables_dir(), SHIPPED_TABLES_DIR]


def table_paths() -> list[Path]:
    """Every table file, one per name (a user table hides a shipped one of the same name)."""
    by_name: dict[str, Path] = {}
    for directory in table_dirs():
        for path in sorted(directory.glob("*.csv")) if directory.is_dir() else []:
            if path.is_file():
                by_name.setdefault(path.stem, path)
    return list(by_name.values())


def resolve_device(name_or_path: str | Path) -> Path:
    """The table file for a CSV path, a table name (file stem) or an alias from a table header."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.suffix == ".csv" or os.sep in text:
        raise QuadnasError(
            f"latency table {path} does not exist: give an existing CSV path or a device name ({_known()})"
        )
    for directory in table_dirs():
        candidate = directory / f"{text}.csv"
        if candidate.is_file():
            return candidate
    for candidate in table_paths():
        meta = _meta_or_warn(candidate)
        if meta is not None and text in meta.aliases:
            return candidate
    raise QuadnasError(
        f"unknown device '{text}': use one of {_known()}, a CSV path, or measure this "
        f"machine with `quadnas profile --name {text}`"
    )


def load_device_table(name_or_path: str | Path) -> LatencyTable:
    """Resolve and read a table."""
    return LatencyTable.read(resolve_device(name_or_path))


def table_files() -> list[TableFile]:
    """Every table file, user tables first, each read or with the reason it cannot be."""
    files = []
    for path in table_paths():
        try:
            files.append(TableFile(path, table=LatencyTable.read(path)))
        except QuadnasError as e:
            files.append(TableFile(path, error=str(e)))
    return files


def list_tables() -> list[LatencyTable]:
    """Every readable table, user tables first; an unreadable file is skipped with a warning."""
    tables = []
    for file in table_files():
        if file.table is None:
            logger.warning("skipped an unreadable latency table: %s", file.error)  # the error names the file
        else:
            tables.append(file.table)
    return tables


def _meta_or_warn(path: Path) -> TableMeta | None:
    """A table's header, or None with a warning naming the file when it cannot be read."""
    try:
        return LatencyTable.read_meta(path)
    except QuadnasError as e:
        logger.warning("skipped an unreadable latency table while looking up names: %s", e)  # e names the file
        return None


def _known() -> str:
    names = []
    for path in table_paths():
        try:
            aliases = LatencyTable.read_meta(path).aliases
        except QuadnasError:
            aliases = []
        names.append(path.stem + (f" ({', '.join(aliases)})" if aliases else ""))
    return ", ".join(names) or "none (no tables found)"
