"""A kit's results file: `# key: value` header lines, then one CSV row per measured model.

Rewritten atomically after every model, so an interrupted run keeps what it measured; a rerun resumes it
when its identity (kit, runtime, threads, clock, host) matches, and refuses otherwise.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path

from .errors import KitError
from .files import atomic_write
from .timing import Timing

RESULT_COLUMNS = ("kind", "key", "median_ms", "p10_ms", "p90_ms", "runs")


def read_header(text: str) -> dict[str, str]:
    """The `# key: value` lines at the top of a CSV."""
    header = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        header[key.strip()] = value.strip()
    return header


def read_rows(text: str) -> list[dict[str, str]]:
    """The CSV rows below the header lines, as column -> text."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(body)))


class ResultsFile:
    """results.csv: `# key: value` header, then one row per measured model; rewritten atomically."""

    IDENTITY_KEYS = ("fingerprint", "kit_precision", "backend", "target", "threads", "clock", "host_fingerprint")

    def __init__(self, path: Path, header: dict[str, str]):
        self.path, self.header = path, dict(header)
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        if path.exists():
            text = path.read_text()
            old = read_header(text)
            clash = [k for k in self.IDENTITY_KEYS if old.get(k) != self.header.get(k)]
            if clash:
                was = ", ".join(f"{k}={old.get(k)}" for k in clash)
                raise KitError(f"{path} was measured with {was}: delete it or rerun with those settings")
            self.header = {**old, **self.header}
            self.rows = {(row["kind"], row["key"]): row for row in read_rows(text)}

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.rows

    def add(self, kind: str, key: str, timing: Timing) -> None:
        self.rows[(kind, key)] = {"kind": kind, "key": key, **{k: str(v) for k, v in asdict(timing).items()}}
        out = io.StringIO()
        out.writelines(f"# {k}: {v}\n" for k, v in self.header.items())
        writer = csv.DictWriter(out, RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows.values())
        atomic_write(self.path, out.getvalue())
