"""`quadnas validate`: measure random whole networks and compare them with a table's predictions."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from quadnas.cli.common import console, err_console, positive_int
from quadnas.cli.json_output import SCHEMA_VERSION, dumps, print_json
from quadnas.cli.progress import note, progress_for
from quadnas.errors import QuadnasError
from quadnas.latency.measure import ProfileSettings
from quadnas.portable import CLOCK_CHOICES

if TYPE_CHECKING:
    from rich.table import Table

    from quadnas.latency.measure import ValidationResult

STDOUT = Path("-")  # `--json` without a path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a measured table against whole networks measured end to end",
        description="Measure N random archs of the table's space on the table's own backend, target and threads, "
        "and report the prediction error (MAPE, max, share within 5%% and 10%%, Kendall tau). The networks are then "
        "measured a second time, and the same figures for the second measurement against the first (this "
        "machine's noise floor) are printed beside them: a table cannot be told better than that floor. A few of "
        "the table's own calibration networks are timed again among them: their time now over their profiled "
        "time is this machine's speed against the profile's, and the prediction scaled by it is shown too.",
    )
    parser.add_argument("--table", required=True, help="table name, alias or CSV path")
    parser.add_argument("--n", type=positive_int, default=20, help="number of random networks (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random networks (default 1)")
    parser.add_argument("--space", default=None, help="the space's YAML, if it is not the shipped one the table names")
    parser.add_argument(
        "--network-rounds", type=positive_int, default=ProfileSettings().network_rounds, help="timed rounds per network"
    )
    parser.add_argument(
        "--clock",
        choices=CLOCK_CHOICES,
        metavar="CLOCK",
        default=None,
        help="one of %(choices)s: time the networks on this clock instead of the table's (e.g. wall)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        nargs="?",
        type=Path,
        const=STDOUT,
        default=None,
        help=f"print the figures as one JSON document (schema quadnas.validate/{SCHEMA_VERSION}, see docs/json.md) "
        "instead of text; with PATH, write that document to PATH and print the text as usual",
    )
    parser.add_argument(
        "--precision",
        default=None,
        help="the precision the table is expected to predict (fp32 or int8); default: the table's own. "
        "The networks are always timed at the table's precision (int8: quantized); one that mixes INT8 and "
        "float with the table is an error",
    )
    parser.add_argument(
        "--no-repeat",
        dest="repeat",
        action="store_false",
        help="measure the networks once, without the noise floor (about half the measuring time)",
    )
    parser.add_argument("--verbose", action="store_true", help="print every network")
    parser.set_defaults(func=run_validate)


def network_rows(result: ValidationResult) -> Table:
    """One line per network: measured (and measured again), predicted, error, arch."""
    from rich.table import Table

    again: list[float | None] = [*result.repeat_ms] if result.repeat_ms else [None] * len(result.archs)
    rows = Table("measured ms", *(["again ms"] if result.repeat_ms else []), "predicted ms", "error")
    rows.add_column("arch", overflow="fold")
    for arch, m, m2, p in zip(result.archs, result.measured_ms, again, result.predicted_ms):
        rows.add_row(
            f"{m:.3f}", *([f"{m2:.3f}"] if m2 is not None else []), f"{p:.3f}", f"{(p - m) / m * 100:+.1f}%", arch
        )
    return rows


def run_validate(args: argparse.Namespace) -> int:
    from rich.table import Table

    from quadnas.latency import foreign_host_note, load_device_table
    from quadnas.latency.measure import validate
    from quadnas.portable import atomic_write
    from quadnas.space import SearchSpace

    if args.json not in (None, STDOUT) and args.json.is_dir():
        raise QuadnasError(f"--json {args.json} is a folder: give a file path, e.g. {args.json / 'validate.json'}")
    table = load_device_table(args.table)
    space = SearchSpace.load(args.space) if args.space else None
    settings = ProfileSettings(network_rounds=args.network_rounds)
    host_note = foreign_host_note(table.meta)
    if host_note is not None:
        note(err_console, f"the networks are timed on this host and compared with another host's table: {host_note}")
    result = validate(
        table,
        space,
        n=args.n,
        seed=args.seed,
        settings=settings,
        clock=args.clock,
        progress=progress_for(err_console),
        precision=args.precision,
        repeat=args.repeat,
    )
    if args.json == STDOUT:
        print_json("validate", result.as_dict())
        return 0
    if args.verbose:
        console.print(network_rows(result))
    console.print(f"{result.table}: {result.n} networks, {result.precision}, {result.clock} clock, {result.backend}")
    figures = Table("", "MAPE", "max error", "within ±5%", "within ±10%", "Kendall τ")
    kinds = [("prediction", result.as_dict())]
    if result.at_speed is not None:
        kinds.append(("scaled", result.at_speed))
    if result.repeat is not None:
        kinds.append(("repeat", result.repeat))
    for kind, found in kinds:
        figures.add_row(
            kind,
            f"{found['mape_pct']:.2f}%",
            f"{found['max_err_pct']:.2f}%",
            f"{found['within_5_pct']:.0f}%",
            f"{found['within_10_pct']:.0f}%",
            f"{found['kendall_tau']:.3f}",
        )
    console.print(figures)
    floor = result.floor_note()
    if floor is not None:
        console.print(f"repeat: the same networks measured again. {floor[0].upper()}{floor[1:]}")
    speed = result.speed_note()
    if speed is not None:
        console.print(f"scaled: the prediction x {result.speed_ratio:.2f}. {speed[0].upper()}{speed[1:]}.")
    if args.json is not None:
        try:
            atomic_write(args.json, dumps("validate", result.as_dict()))
        except OSError as e:
            raise QuadnasError(
                f"cannot write --json {args.json}: {e.strerror or e}: give a writable file path"
            ) from None
        console.print(f"[green]wrote[/] {args.json}")
    return 0
