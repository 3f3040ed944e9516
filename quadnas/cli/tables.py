"""`quadnas tables`: every latency table (user and shipped) with its provenance, expected error and host."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from quadnas.cli.common import console
from quadnas.cli.json_output import add_json_flag, print_json, table_fields

if TYPE_CHECKING:
    from quadnas.latency import Host, LatencyTable, TableFile

PIPED_WIDTH = 140  # output to a file or pipe is laid out this wide, never narrow
# Always shown (the error short, without its network count), whatever the width:
REQUIRED = ("name", "backend", "provenance", "host", "error %")
# Then, while they fit, in this order (a wider 'error % mean/max' replaces 'error %'):
OPTIONAL = ("error % mean/max", "device", "created", "where")
ORDER = ("name", "device", "backend", "provenance", "host", "created", "error %", "error % mean/max", "where")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tables",
        help="list latency tables",
        description="List the latency tables `--device` can name: user tables first, then the shipped ones. "
        "`host` says whether a measured table was taken on this host.",
    )
    add_json_flag(parser, "tables")
    parser.set_defaults(func=run)


def expected_error(table: LatencyTable, networks: bool = True) -> str:
    """Mean / max % error of the calibration (fit error for estimated tables), with its network count."""
    c = table.meta.calibration
    if c.error_text() is None:
        return "unknown"
    return f"{c.mape_pct:.1f}/{c.max_err_pct:.1f}" + (f" ({c.networks} nets)" if networks else "")


def row_of(file: TableFile, here: Host) -> dict[str, str]:
    """One readable table's cells, by column."""
    from quadnas.latency import host_status

    table = file.table
    assert table is not None  # callers pass readable tables only
    m = table.meta
    aliases = f" ({', '.join(m.aliases)})" if m.aliases else ""
    return {
        "name": table.name + aliases,
        "device": m.device,
        "backend": f"{m.backend} {m.precision}",
        "provenance": m.provenance,
        "host": host_status(m, here) or "—",
        "created": m.created.strftime("%Y-%m-%d"),
        "error %": expected_error(table, networks=False),
        "error % mean/max": expected_error(table),
        "where": "shipped" if file.shipped else "user",
    }


def fitting_columns(rows: list[dict[str, str]], width: int) -> list[str]:
    """REQUIRED, plus what of OPTIONAL fits in `width` at the cells' natural widths (3 characters between columns:
    padding either side and the box's blank divider)."""
    natural = {c: max([len(c)] + [len(r[c]) for r in rows]) + 3 for c in ORDER}
    chosen = list(REQUIRED)
    for column in OPTIONAL:
        dropped = ["error %"] if column == "error % mean/max" else []
        trial = [c for c in chosen if c not in dropped] + [column]
        if sum(natural[c] for c in trial) - 3 <= width:
            chosen = trial
    return [c for c in ORDER if c in chosen]


def run(args: argparse.Namespace) -> int:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from quadnas.latency import SHIPPED_TABLES_DIR, Host, table_files, user_tables_dir

    here = Host.current()
    files = table_files()
    if args.json:
        print_json("tables", tables_fields(files, here))
        return 0
    out = console if console.is_terminal else Console(width=PIPED_WIDTH)
    rows = [row_of(f, here) for f in files if f.table is not None]
    view = Table(title="latency tables", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    columns = fitting_columns(rows, out.width)
    for column in columns:
        whole = column in ("name", "created", "provenance", "host")  # never wrapped: typed, sorted by, or key facts
        view.add_column(column, no_wrap=whole, overflow="fold")
    for row in rows:
        view.add_row(*(row[c] for c in columns))
    out.print(view)
    for f in files:
        if f.table is None:
            out.print(
                f"[red]unreadable[/] {escape(f.path.name)} ({'shipped' if f.shipped else 'user'}): "
                f"{escape(f.error or '')}",
                highlight=False,
                soft_wrap=True,
            )
    out.print(
        f"[dim]user tables: {user_tables_dir()} (QUADNAS_TABLES overrides); shipped: {SHIPPED_TABLES_DIR}[/]",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def tables_fields(files: list[TableFile], here: Host) -> dict[str, Any]:
    """The `quadnas.tables/1` document's keys: readable tables in search order, then the unreadable files."""
    from quadnas.latency import SHIPPED_TABLES_DIR, user_tables_dir

    return {
        "user_dir": user_tables_dir(),
        "shipped_dir": SHIPPED_TABLES_DIR,
        "tables": [
            {**table_fields(f.table, here), "where": "shipped" if f.shipped else "user"}
            for f in files
            if f.table is not None
        ],
        "unreadable": [
            {"path": f.path, "where": "shipped" if f.shipped else "user", "error": f.error}
            for f in files
            if f.table is None
        ],
    }
