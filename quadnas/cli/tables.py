"""`quadnas tables`: every latency table (user and shipped) with its provenance and expected error."""

from __future__ import annotations

import argparse

from rich import box
from rich.console import Console
from rich.table import Table

from quadnas.cli.common import console
from quadnas.latency.devices import SHIPPED_TABLES_DIR, list_tables, user_tables_dir
from quadnas.latency.table import LatencyTable


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tables", help="list latency tables",
        description="List the latency tables `--device` can name: user tables first, then the shipped ones.",
    )
    parser.set_defaults(func=run)


def expected_error(table: LatencyTable) -> str:
    """Mean / max % error of the calibration (fit error for estimated tables) and its network count."""
    c = table.meta.calibration
    if c.error_text() is None:
        return "unknown"
    return f"{c.mape_pct:.1f}/{c.max_err_pct:.1f} ({c.networks} nets)"


NARROW = 100  # below this many columns, 'created' and 'where' are left out (the footer names the folders)
PIPED_WIDTH = 140  # output to a file or pipe is laid out this wide, never narrow


def run(args: argparse.Namespace) -> int:
    out = console if console.is_terminal else Console(width=PIPED_WIDTH)
    headers = ["name", "device", "aliases", "backend", "provenance", "created", "error % mean/max", "where"]
    rows = []
    for table in list_tables():
        m = table.meta
        where = "shipped" if table.path is not None and table.path.parent == SHIPPED_TABLES_DIR else "user"
        rows.append([table.name, m.device, ", ".join(m.aliases), f"{m.backend} {m.precision}", m.provenance,
                     m.created.strftime("%Y-%m-%d"), expected_error(table), where])
    shown = [i for i, h in enumerate(headers) if out.width >= NARROW or h not in ("created", "where")]
    view = Table(title="latency tables", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in shown:
        whole = headers[i] in ("name", "created", "provenance")  # never wrapped: typed, sorted by, or the key fact
        width = max([len(headers[i])] + [len(r[i]) for r in rows]) if whole else None
        view.add_column(headers[i], no_wrap=whole, min_width=width, overflow="fold")
    for row in rows:
        view.add_row(*(row[i] for i in shown))
    out.print(view)
    out.print(f"[dim]user tables: {user_tables_dir()} (QUADNAS_TABLES overrides); "
              f"shipped: {SHIPPED_TABLES_DIR}[/]", highlight=False, soft_wrap=True)
    return 0
