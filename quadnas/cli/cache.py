"""`quadnas cache`: list or clear the supernets searches trained and cached."""

from __future__ import annotations

import argparse

from quadnas.cli.common import console


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list or clear cached search supernets",
                       description="The supernets `quadnas search` trained and cached (under runs/supernets/ of "
                                   "the folder it ran in). A search trains a missing one again.")
    p.add_argument("action", choices=("list", "clear"), help="list the cache, or delete from it")
    p.add_argument("names", nargs="*", metavar="NAME", help="with clear: file names to delete (default: all)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from quadnas.errors import QuadnasError
    from quadnas.supernet.cache import cached_supernets, clear
    from quadnas.supernet.checkpoint import SUPERNETS_DIR

    entries = cached_supernets()
    if args.action == "list":
        if args.names:
            raise QuadnasError("`quadnas cache list` takes no names: run it alone")
        table = Table(title=f"cached supernets in {SUPERNETS_DIR}/ ({len(entries)})")
        for column in ("name", "space", "data", "width", "epochs", "MB", "modified"):
            table.add_column(column, overflow="fold")
        for e in entries:
            m = e.meta
            table.add_row(e.path.name, m.space_name if m else f"unreadable: {e.problem}", m.dataset.name if m else "",
                          f"{m.config.get('width', 1.0):g}" if m else "", f"{m.epoch}/{m.epochs}" if m else "",
                          f"{e.size_bytes / 1e6:.1f}", e.modified.strftime("%Y-%m-%d %H:%M"))
        console.print(table)
        return 0
    chosen = [e for e in entries if not args.names or e.path.name in args.names]
    unknown = sorted(set(args.names) - {e.path.name for e in entries})
    if unknown:
        raise QuadnasError(f"no cached supernet named {', '.join(unknown)} in {SUPERNETS_DIR}/: "
                           "see `quadnas cache list` for the names")
    freed = clear(chosen)
    console.print(f"deleted {len(chosen)} cached supernet(s), {freed / 1e6:.1f} MB freed", highlight=False)
    return 0
