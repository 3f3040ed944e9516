"""`quadnas profile estimate`: the shipped estimated tables (cortex-a76, myriad-x, a100) made for a search space."""

from __future__ import annotations

import argparse
from pathlib import Path

from quadnas.cli.common import console


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="estimate the shipped devices' tables (cpu, vpu, gpu) for a search space, with no device",
        description="Fit the operator cost model of each shipped estimated device (cortex-a76, myriad-x, a100) to "
        "its published whole-network latencies, as the shipped tables are made, and write one table per device "
        "with a row for every op spec of --space. Estimates, not measurements: where you have the device, "
        "measure it (quadnas profile kit).",
    )
    parser.add_argument(
        "--space",
        dest="estimate_space",
        metavar="SPACE",
        default="quadranet-t-qe",
        help="search space name or YAML whose op specs get rows (default quadranet-t-qe)",
    )
    parser.add_argument(
        "--out",
        dest="estimate_out",
        metavar="DIR",
        type=Path,
        required=True,
        help="folder for DEVICE.csv (a table there that the estimate would not change is left as it is)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quadnas.latency.estimate import rebuild
    from quadnas.space import SearchSpace

    space = SearchSpace.load(args.estimate_space)
    for built in rebuild(space, args.estimate_out):
        name = f"{built.recipe.name} ({', '.join(built.recipe.aliases)})"
        if not built.differences:
            console.print(f"unchanged {name}: {built.path}")
            continue
        built.table.write(built.path)
        error = built.table.meta.calibration.error_text()
        fit = f"fit error {error}" if error else "no fit error stated (see the table's method)"
        console.print(f"[green]wrote[/] {name}: {built.path} ({len(built.table)} op specs; {fit})")
    console.print(f"use one with --device PATH, e.g. --device {args.estimate_out / 'cortex-a76.csv'}")
    return 0
