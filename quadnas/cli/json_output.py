"""`--json`: one document on stdout, its schema name first (the schemas: docs/json.md); `run_json` reads one
back from a command run in another process (the evidence scripts drive the CLI so)."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quadnas.latency import Host, LatencyTable

SCHEMA_VERSION = 1


def add_json_flag(parser: argparse.ArgumentParser, schema: str, dest: str = "json") -> None:
    """`--json`: print the command's result as the `quadnas.<schema>/1` document instead of text."""
    parser.add_argument(
        "--json",
        dest=dest,
        action="store_true",
        help=f"print one JSON document (schema quadnas.{schema}/{SCHEMA_VERSION}, see docs/json.md) instead of text",
    )


def print_json(schema: str, fields: Mapping[str, Any]) -> None:
    """Write the `quadnas.<schema>/1` document of `fields` to stdout, the schema key first."""
    sys.stdout.write(dumps(schema, fields))


def dumps(schema: str, fields: Mapping[str, Any]) -> str:
    """The `quadnas.<schema>/1` document of `fields` as text, ending in a newline."""
    document = {"schema": f"quadnas.{schema}/{SCHEMA_VERSION}", **fields}
    return json.dumps(plain(document), indent=2, allow_nan=False) + "\n"


def plain(value: Any) -> Any:
    """`value` with only JSON types: paths as strings, numpy numbers and arrays as numbers and lists,
    times in ISO 8601, NaN and infinities as null."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # a numpy number or array, without importing numpy
        return plain(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def table_fields(table: LatencyTable, here: Host | None = None) -> dict[str, Any]:
    """What the documents say about a latency table (`here`: this host, read when not given)."""
    from quadnas.latency import host_status

    m, c = table.meta, table.meta.calibration
    return {
        "name": table.name,
        "path": table.path,
        "device": m.device,
        "aliases": m.aliases,
        "backend": m.backend,
        "backend_version": m.backend_version,
        "precision": m.precision,
        "batch": m.batch,
        "threads": m.threads,
        "resolution": m.resolution,
        "space": m.space,
        "provenance": m.provenance,
        "created": m.created,
        "calibration": {
            "a": c.a,
            "b_ms": c.b_ms,
            "mape_pct": c.mape_pct,
            "max_err_pct": c.max_err_pct,
            "networks": c.networks,
        },
        "host": host_status(m, here),
    }


def run_json(*argv: str, cwd: Path | None = None) -> dict[str, Any]:
    """The `--json` document of `quadnas -q ARGV --json` run by this Python in a fresh process, in `cwd`.

    A command that leaves no document (an error, exit 2, or an export that failed its check) stops
    the caller with SystemExit naming the command and its last line of stderr.
    """
    command = [sys.executable, "-m", "quadnas", "-q", *argv, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if not done.stdout.strip():
        last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise SystemExit(f"quadnas {' '.join(argv[:2])} failed: {last[0]}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document
