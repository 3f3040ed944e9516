"""`quadnas predict`: the latency of an arch on a device, its breakdown, the space's range."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from quadnas.cli.common import console, err_console
from quadnas.cli.json_output import add_json_flag, print_json, table_fields
from quadnas.cli.progress import note
from quadnas.errors import QuadnasError

if TYPE_CHECKING:
    from quadnas.latency import LatencyPredictor, LatencyTable
    from quadnas.space import SearchSpace


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict an arch's latency on a device",
        description="Predict latency from a latency table: `quadnas predict --device vpu --arch k3e2-...`.",
    )
    parser.add_argument(
        "--device", required=True, help="cpu, vpu, gpu, a table name (see `quadnas tables`) or a table CSV path"
    )
    parser.add_argument(
        "--arch",
        help="architecture, one token per block joined by -: k{kernel}e{expansion} (q suffix: enhanced) or id",
    )
    parser.add_argument("--space", help="search space YAML or name (default: the table's space)")
    parser.add_argument("--breakdown", action="store_true", help="show the latency of every op")
    parser.add_argument("--range", action="store_true", help="show the fastest and slowest arch of the space")
    add_json_flag(parser, "predict")
    parser.set_defaults(func=run)


def format_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms >= 1 else f"{ms:.3f} ms"


def table_space(table: LatencyTable, space: str | None) -> SearchSpace:
    """The space given, else the one the table was made for."""
    from quadnas.latency.measure import load_table_space
    from quadnas.space import SearchSpace

    return SearchSpace.load(space) if space is not None else load_table_space(table)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from quadnas.latency import LatencyPredictor, foreign_host_note, load_device_table

    if not args.arch and not args.range:
        raise QuadnasError("nothing to predict: give --arch ARCH (e.g. k3e2-k7e4-id-...) and/or --range")
    table = load_device_table(args.device)
    space = table_space(table, args.space)
    predictor = LatencyPredictor(table, space)
    host_note = foreign_host_note(table.meta)
    if host_note is not None:
        note(err_console, host_note)
    if args.json:
        print_json("predict", predict_fields(predictor, args.arch, args.breakdown, args.range))
        return 0
    meta = table.meta
    calibration = meta.calibration
    error = f"; expected error {calibration.error_text()}" if calibration.error_text() else ""
    context = (
        f"[dim]{table.name}: {meta.provenance}, {meta.backend} {meta.precision}, batch {meta.batch}, "
        f"space {space.name}{error}[/]"
    )
    if args.arch:
        arch = space.parse(args.arch)
        console.print(format_ms(predictor.predict(arch)), highlight=False)
        console.print(context, highlight=False, soft_wrap=True)
        if args.breakdown:
            view = Table("op", "ms", "share", title=f"{arch} on {table.name}")
            breakdown = predictor.breakdown(arch)
            for op, ms, share in zip(breakdown["op"], breakdown["ms"], breakdown["share"]):
                view.add_row(op, f"{ms:.3f}", f"{100 * share:.1f}%")
            console.print(view)
    if args.range:
        if not args.arch:
            console.print(context, highlight=False, soft_wrap=True)
        for label, (arch, ms) in (("fastest", predictor.fastest()), ("slowest", predictor.slowest())):
            console.print(f"{label}: {format_ms(ms)}  {arch}", highlight=False, soft_wrap=True)
    return 0


def predict_fields(
    predictor: LatencyPredictor, arch_text: str | None, breakdown: bool, extremes: bool
) -> dict[str, Any]:
    """The `quadnas.predict/1` document's keys; what was not asked for is None."""
    arch = predictor.space.parse(arch_text) if arch_text else None
    fields: dict[str, Any] = {
        "table": table_fields(predictor.table),
        "space": predictor.space.name,
        "arch": None if arch is None else str(arch),
        "latency_ms": None if arch is None else predictor.predict(arch),
        "breakdown": None,
        "range": None,
    }
    if arch is not None and breakdown:
        rows = predictor.breakdown(arch)
        fields["breakdown"] = [
            {"op": op, "ms": ms, "share": share} for op, ms, share in zip(rows["op"], rows["ms"], rows["share"])
        ]
    if extremes:
        fields["range"] = {
            label: {"arch": str(extreme), "latency_ms": ms}
            for label, (extreme, ms) in (("fastest", predictor.fastest()), ("slowest", predictor.slowest()))
        }
    return fields
