"""Latency tables: one row per op spec under a `# key: value` header (docs/tables.md describes the file
format and this API). The header's model (`TableMeta` and its sections) lives in `latency.header`.

`upsert` changes a table in place (the profiler writes one row at a time, atomically); `with_rows` and
`merged` return new tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from quadnas.errors import Invalid, QuadnasError
from quadnas.latency.header import LIST_KEYS, ONE_ITEM_A_LINE, file_location
from quadnas.latency.header import TableMeta as TableMeta  # importable beside the table it heads
from quadnas.portable.files import atomic_write
from quadnas.space import OpKind, OpSpec

SPEC_COLUMNS: tuple[str, ...] = OpSpec.COLUMNS
_Key = tuple[OpKind, int, int, int, int, int, int, int]  # an op spec as a row key: its SPEC_COLUMNS values
LATENCY_COLUMNS: tuple[str, ...] = ("latency_ms", "p10_ms", "p90_ms")
COLUMNS: tuple[str, ...] = SPEC_COLUMNS + LATENCY_COLUMNS + ("runs",)
_INT_COLUMNS = ("height", "width", "cin", "cout", "kernel", "expansion", "enhance", "runs")
_ADDED_COLUMNS = {"enhance": 0}  # columns newer than the format: a file without one has this value


class LatencyTable:
    """Median latency (and spread) of each op spec on one device, with its metadata."""

    def __init__(self, meta: TableMeta, rows: pd.DataFrame | None = None, path: Path | None = None):
        self.meta = meta
        self.path = Path(path) if path is not None else None
        self.rows = rows if rows is not None else pd.DataFrame(columns=COLUMNS)

    @property
    def rows(self) -> pd.DataFrame:
        """One row per op spec (COLUMNS), sorted by spec. Assigning validates and re-indexes."""
        return self._rows

    @rows.setter
    def rows(self, rows: pd.DataFrame) -> None:
        self._rows = _normalise(rows, self._where)
        self._index: dict[_Key, float] | None = None

    @property
    def name(self) -> str:
        """The name a user types: the file stem, else the device."""
        return self.path.stem if self.path is not None else self.meta.device

    @property
    def _where(self) -> str:
        return f"latency table {self.path}" if self.path is not None else f"latency table '{self.meta.device}'"

    # ---- reading and writing ---------------------------------------------
    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        """Read and validate a table; every problem is a QuadnasError naming the file and the fix."""
        path = Path(path)
        header, body, body_start = _split(path)
        meta = _parse_meta(header, path)
        _check_field_counts(body, body_start, path)
        try:
            rows = pd.read_csv(io.StringIO(body), dtype={"op": str}, index_col=False)
        except pd.errors.EmptyDataError:
            raise QuadnasError(
                f"latency table {path}: no CSV header row after the metadata: add the line '{','.join(COLUMNS)}'"
            ) from None
        except pd.errors.ParserError as e:
            raise QuadnasError(
                f"latency table {path}: the CSV rows cannot be parsed ({str(e).strip()}): "
                "fix the quoting, or re-measure with `quadnas profile`"
            ) from None
        table = cls(meta, path=path)
        table._rows = _normalise(rows, table._where, body_start)  # validated once, with line numbers
        return table

    @classmethod
    def read_meta(cls, path: str | Path) -> TableMeta:
        """Only the validated header (cheap: used to find aliases)."""
        path = Path(path)
        return _parse_meta(_split(path)[0], path)

    def write(self, path: str | Path | None = None) -> Path:
        """Write atomically (temporary file + rename); returns the path written."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("LatencyTable.write needs a path for a table that was never read or written")
        try:
            atomic_write(target, self.to_text())
        except OSError as e:
            raise QuadnasError(
                f"cannot write latency table {target}: {e.strerror or e}: give a writable file path"
            ) from None
        self.path = target
        return target

    def to_text(self) -> str:
        """The file content: header lines, then the rows (kept sorted by op spec)."""
        lines = []
        for key, value in self.meta.file_items().items():
            one_a_line = key in ONE_ITEM_A_LINE or (key not in TableMeta.model_fields and isinstance(value, list))
            items = value if one_a_line and len(value) > 1 else [value]  # one item stays a list for any reader
            lines += [f"# {key}: {_inline(v)}" for v in items]
        body = self.rows.to_csv(index=False, float_format="%.6g", lineterminator="\n")
        return "\n".join(lines) + "\n" + body

    # ---- lookup ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    def specs(self) -> list[OpSpec]:
        """The op specs this table has rows for."""
        return [OpSpec(*key) for key in self._lookup_index()]

    def missing(self, specs: Iterable[OpSpec]) -> list[OpSpec]:
        """The distinct specs of `specs` that have no row, in first-seen order."""
        index = self._lookup_index()
        return list(dict.fromkeys(s for s in specs if _key(s) not in index))

    def check_covers(self, specs: Iterable[OpSpec], space: str | None = None) -> None:
        """Raise a QuadnasError naming the missing specs and how to get them."""
        missing = self.missing(specs)
        if not missing:
            return
        shown = "; ".join(str(s) for s in missing[:8]) + (
            f"; ... ({len(missing) - 8} more)" if len(missing) > 8 else ""
        )
        raise QuadnasError(f"{self._where} has no row for {len(missing)} op spec(s): {shown}. {self.rows_hint(space)}")

    def rows_hint(self, space: str | None = None) -> str:
        """How to get rows for another space (`space`: its YAML or name): measure them for a measured
        table; for an estimate, rebuild the estimates or measure the real device with the kit."""
        space_arg = f" --space {space}" if space else ""
        if self.meta.provenance == "estimated":
            return (
                f"The table is an estimate (a cost model, not measured) made for other op specs: make the "
                f"estimates for this space with `quadnas profile estimate{space_arg} --out DIR`, "
                f"or measure the real device with the kit: `quadnas profile kit{space_arg} --out kit/`"
            )
        if self.meta.provenance == "adapted":
            return (
                f"The table is adapted from another table made for other op specs: adapt one that covers this "
                f"space with `quadnas profile --adapt SOURCE{space_arg} --name NAME`"
            )
        return f"Measure the missing op specs with `quadnas profile{space_arg} --name {self.name}`"

    def lookup(self, specs: Iterable[OpSpec]) -> np.ndarray:
        """Median latency (ms) of each spec; a missing spec is an error, never 0 ms."""
        specs = list(specs)
        self.check_covers(specs)
        index = self._lookup_index()
        return np.array([index[_key(s)] for s in specs], dtype=float)

    # ---- changing ----------------------------------------------------------
    def upsert(self, spec: OpSpec, latency_ms: float, p10_ms: float, p90_ms: float, runs: int) -> None:
        """Add or replace the row of `spec` in place."""
        row = {**spec.as_row(), "latency_ms": latency_ms, "p10_ms": p10_ms, "p90_ms": p90_ms, "runs": runs}
        self.rows = _combine(self.rows, pd.DataFrame([row]), self._where)

    def with_rows(self, rows: list[dict[str, Any]]) -> LatencyTable:
        """A new table with `rows` (dicts of COLUMNS) added; they replace rows of the same spec."""
        return LatencyTable(self.meta, _combine(self.rows, pd.DataFrame(rows, columns=COLUMNS), self._where), self.path)

    def merged(self, other: LatencyTable) -> LatencyTable:
        """A new table with this table's metadata and rows, overridden by `other`'s rows."""
        return LatencyTable(self.meta, _combine(self.rows, other.rows, self._where), self.path)

    def _lookup_index(self) -> dict[_Key, float]:
        if self._index is None:
            keys = zip(*(self.rows[c].tolist() for c in SPEC_COLUMNS))
            self._index = dict(zip(keys, self.rows["latency_ms"].astype(float).tolist()))
        return self._index


# ---- helpers ----------------------------------------------------------------
def _key(spec: OpSpec) -> _Key:
    return tuple(getattr(spec, c) for c in SPEC_COLUMNS)


def _inline(value: Any) -> str:
    """A header value as one line of YAML: plain when that reads back the same, else JSON."""
    if isinstance(value, str) and "\n" not in value and value.strip() == value:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = None
        if parsed == value or isinstance(parsed, datetime):
            return value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
        .strip()
        .removesuffix("\n...")
        .strip()
    )


def _split(path: Path) -> tuple[list[tuple[int, str]], str, int]:
    """Header lines (with line numbers), the CSV body and the body's first line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise QuadnasError(
            f"latency table {path} does not exist: give an existing CSV path or a device name (see `quadnas tables`)"
        ) from None
    except UnicodeDecodeError as e:
        raise QuadnasError(
            f"latency table {path} is not UTF-8 text ({e.reason} at byte {e.start}): save it as "
            "UTF-8, or move it out of the tables folder"
        ) from None
    except OSError as e:
        raise QuadnasError(
            f"cannot read latency table {path}: {e.strerror or e}: check that it is a readable file"
        ) from None
    lines = text.splitlines()
    n = 0
    while n < len(lines) and (lines[n].startswith("#") or not lines[n].strip()):
        n += 1
    header = [(i + 1, line) for i, line in enumerate(lines[:n]) if line.strip()]
    stray = next((i for i in range(n, len(lines)) if lines[i].startswith("#")), None)
    if stray is not None:
        raise QuadnasError(
            f"latency table {path} line {stray + 1}: header line after the first CSV line "
            f"(line {n + 1}): move the '# key: value' lines to the top"
        )
    return header, "\n".join(lines[n:]), n + 1


def _parse_meta(header: list[tuple[int, str]], path: Path) -> TableMeta:
    if not header:
        raise QuadnasError(
            f"{path} has no '# key: value' header, so it is not a quadnas latency table: "
            "move it out of the tables folder (see docs/tables.md for the format)"
        )
    values: dict[str, list[Any]] = {}
    for lineno, line in header:
        key, sep, raw = line.lstrip("#").strip().partition(":")
        key = key.strip()
        if not sep or not key or " " in key:
            raise QuadnasError(
                f"latency table {path} line {lineno}: header lines must read '# key: value', "
                f"got '{line.strip()}': fix the line"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, RecursionError):
            raise QuadnasError(
                f"latency table {path} line {lineno}: value of '{key}' is not valid inline "
                "YAML/JSON: quote it or fix the brackets"
            ) from None
        values.setdefault(key, []).append(value)
    fields: dict[str, Any] = {}
    for key, items in values.items():
        if key in LIST_KEYS or (key not in TableMeta.model_fields and len(items) > 1):
            fields[key] = [x for item in items for x in (item if isinstance(item, list) else [item])]
        elif len(items) > 1:
            raise QuadnasError(f"latency table {path}: header key '{key}' appears {len(items)} times: keep one")
        else:
            fields[key] = items[0]
    try:
        return TableMeta.model_validate(fields)
    except ValidationError as e:
        bad = Invalid.of(e)
        bad = replace(bad, loc=file_location(bad.loc))
        if bad.kind == "missing" and len(bad.loc) > 1:
            raise QuadnasError(
                f"latency table {path}: header key '{bad.loc[0]}' lacks '{'.'.join(bad.loc[1:])}': add it to that "
                "header line (see docs/tables.md)"
            ) from None
        if bad.kind == "missing":
            raise QuadnasError(
                f"latency table {path}: header lacks key '{bad.key}': "
                f"add a line '# {bad.key}: ...' (see docs/tables.md)"
            ) from None
        raise QuadnasError(
            f"latency table {path}: header key '{bad.key}': {bad.message} (got {bad.value!r}): fix that header line"
        ) from None


def _check_field_counts(body: str, body_start: int, path: Path) -> None:
    """Every CSV line must have as many fields as the CSV header row."""
    lines = list(csv.reader(io.StringIO(body)))
    if not lines:
        return
    expected = len(lines[0])
    for i, fields in enumerate(lines[1:], start=1):
        if fields and len(fields) != expected:
            raise QuadnasError(
                f"latency table {path} line {body_start + i}: corrupted CSV line ({len(fields)} fields, "
                f"expected {expected}): fix or delete that line, or re-measure with `quadnas profile`"
            )


def _normalise(rows: pd.DataFrame, where: str, body_start: int | None = None) -> pd.DataFrame:
    """Check columns, dtypes and values; return a clean frame with exactly COLUMNS, sorted by spec."""
    rows = rows.assign(**{c: v for c, v in _ADDED_COLUMNS.items() if c not in rows.columns})
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise QuadnasError(
            f"{where}: missing column(s) {', '.join(missing)}: the CSV header row must be '{','.join(COLUMNS)}'"
        )
    rows = rows.loc[:, list(COLUMNS)].reset_index(drop=True)

    def line_of(i: int) -> str:
        return f"line {body_start + 1 + i}" if body_start is not None else f"row {i + 1}"

    if rows.empty:
        rows = rows.astype({c: "int64" for c in _INT_COLUMNS} | {c: "float64" for c in LATENCY_COLUMNS})
        return rows.astype({"op": "object"})
    for column in SPEC_COLUMNS + LATENCY_COLUMNS + ("runs",):
        blank = rows[column].isna()
        if blank.any():
            i = int(np.flatnonzero(blank)[0])
            raise QuadnasError(
                f"{where} {line_of(i)}: empty '{column}' (corrupted or truncated line): fix or delete that line"
            )
    for column in _INT_COLUMNS + LATENCY_COLUMNS:
        numbers = pd.to_numeric(rows[column], errors="coerce")
        bad = numbers.isna() | ~np.isfinite(numbers.astype(float))
        if column in _INT_COLUMNS:
            bad |= numbers.fillna(0) != np.floor(numbers.fillna(0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "an integer" if column in _INT_COLUMNS else "a finite number"
            raise QuadnasError(
                f"{where} {line_of(i)}: '{column}' is {rows[column].iloc[i]!r}, not {kind}: fix that line"
            )
        rows[column] = numbers.astype("int64" if column in _INT_COLUMNS else "float64")
    for column in LATENCY_COLUMNS + ("runs",):
        negative = rows[column] < 0
        if negative.any():
            i = int(np.flatnonzero(negative)[0])
            raise QuadnasError(
                f"{where} {line_of(i)}: negative {column} {rows[column].iloc[i]}: "
                "latencies and run counts cannot be negative; re-measure that op"
            )
    rows["op"] = rows["op"].astype(str).str.strip().astype(object)
    duplicated = rows.duplicated(list(SPEC_COLUMNS), keep="first")
    if duplicated.any():
        i = int(np.flatnonzero(duplicated)[0])
        spec = OpSpec(**{c: rows[c].iloc[i] for c in SPEC_COLUMNS})
        raise QuadnasError(f"{where} {line_of(i)}: duplicate row for op spec '{spec}': keep one row per spec")
    return rows.sort_values(list(SPEC_COLUMNS), kind="stable", ignore_index=True)


def _combine(base: pd.DataFrame, override: pd.DataFrame, where: str) -> pd.DataFrame:
    """`base` rows, replaced or extended by `override` rows of the same spec (validated by the caller)."""
    override = _normalise(override, where)
    if base.empty or override.empty:
        return override if base.empty else base.copy()
    both = pd.concat([base, override], ignore_index=True)
    return both.drop_duplicates(list(SPEC_COLUMNS), keep="last")
