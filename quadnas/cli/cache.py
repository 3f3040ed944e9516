"""`quadnas cache`: list or clear the supernets searches trained and cached."""

from __future__ import annotations

import argparse
from pathlib import Path

from quadnas.cli.common import console


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cache",
        help="list or clear cached search supernets",
        description="The supernets under RUNS_DIR/supernets/: those `quadnas search --runs-dir RUNS_DIR` "
        "trained and cached (a search trains a missing one again) and `quadnas train`'s "
        "default checkpoints (under runs/).",
    )
    p.add_argument("action", choices=("list", "clear"), help="list them, or delete some")
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="with clear: file names to delete (default: every search cache, not train checkpoints)",
    )
    p.add_argument("--all", action="store_true", help="with clear: delete train checkpoints too")
    p.add_argument("--runs-dir", default="runs", help="the searches' results folder (default runs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from quadnas.errors import QuadnasError
    from quadnas.supernet import cached_supernets, clear

    folder = Path(args.runs_dir) / "supernets"
    entries = cached_supernets(folder)
    if args.action == "list":
        if args.names:
            raise QuadnasError("`quadnas cache list` takes no names: run it alone")
        table = Table(title=f"cached supernets in {folder}/ ({len(entries)})")
        for column in ("name", "kind", "space", "data", "width", "epochs", "MB", "modified"):
            table.add_column(column, no_wrap=column != "space", overflow="fold")
        for e in entries:
            m = e.meta
            kind = ("search" if e.is_search_cache else "train") if m else "unreadable"
            table.add_row(
                e.path.name,
                kind,
                m.space_name if m else "",
                m.dataset.name if m else "",
                f"{m.config.get('width', 1.0):g}" if m else "",
                f"{m.epoch}/{m.epochs}" if m else "",
                f"{e.size_bytes / 1e6:.1f}",
                e.modified.strftime("%m-%d %H:%M"),
            )
        console.print(table, soft_wrap=True)
        return 0
    chosen = [e for e in entries if e.path.name in args.names or (not args.names and (args.all or e.is_search_cache))]
    unknown = sorted(set(args.names) - {e.path.name for e in entries})
    if unknown:
        raise QuadnasError(
            f"no cached supernet named {', '.join(unknown)} in {folder}/: see `quadnas cache list` for the names"
        )
    freed, busy = clear(chosen)
    console.print(f"deleted {len(chosen) - len(busy)} supernet(s), {freed / 1e6:.1f} MB freed", highlight=False)
    for entry in busy:
        console.print(f"kept {entry.path.name}: a search is training it now", highlight=False)
    return 0
