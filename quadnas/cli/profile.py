"""`quadnas profile`: measure this machine's latency table; `profile kit` / `profile import` for other devices;
`profile estimate` for the shipped estimated devices (`cli/estimate.py`)."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quadnas.cli import estimate
from quadnas.cli.common import console, err_console, positive_float, positive_int
from quadnas.cli.json_output import add_json_flag, print_json, table_fields
from quadnas.cli.progress import progress_for
from quadnas.errors import QuadnasError
from quadnas.latency import BACKEND_NAMES, INT8_BACKENDS, PROFILE_PRECISIONS, user_tables_dir
from quadnas.latency.measure import ProfileSettings
from quadnas.portable import CLOCK_CHOICES

if TYPE_CHECKING:
    from quadnas.latency import LatencyTable
    from quadnas.space import SearchSpace

DEFAULTS = ProfileSettings()
ADAPT_NETWORKS = 10


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="measure a latency table on this machine (or: profile kit / import / estimate)",
        description="Measure every op spec of a search space on a backend and write a latency table "
        "(resumable: rerun the same command after an interruption).",
    )
    parser.add_argument(
        "--backend", default="onnxruntime", help=f"one of {', '.join(BACKEND_NAMES)} (default onnxruntime)"
    )
    parser.add_argument(
        "--target",
        default=None,
        help="OpenVINO device (CPU, GPU, NPU), onnxruntime provider (CPU, CUDA), torch device (cpu, cuda) "
        "or CPU for litert (LiteRT's interpreter with XNNPACK)",
    )
    parser.add_argument("--threads", default="1", help="fixed number of threads (default 1)")
    parser.add_argument(
        "--clock",
        choices=CLOCK_CHOICES,
        metavar="CLOCK",
        default="auto",
        help="one of %(choices)s; wall: elapsed time; cpu: the process's CPU time, the same for 1 thread on "
        "an idle CPU but steady on a busy one; auto (default): cpu for 1 thread on a CPU, else wall",
    )
    _add_precision_arg(parser)
    _add_adapt_arg(parser)
    parser.add_argument("--name", default=None, help=f"table name: writes {user_tables_dir()}/NAME.csv")
    parser.add_argument("--out", metavar="PATH", type=Path, default=None, help="write the table to this path instead")
    _add_space_args(parser)
    _add_schedule_args(parser)
    parser.add_argument("--restart", action="store_true", help="measure anew instead of resuming an existing table")
    add_json_flag(parser, "profile")
    parser.set_defaults(func=run_profile)

    sub = parser.add_subparsers(dest="profile_command", metavar="{kit,import,estimate}")
    kit = sub.add_parser(
        "kit",
        help="write a portable profiling kit for a device without quadnas",
        description="Export the op specs and calibration networks to ONNX (or .tflite with --backend litert) "
        "with a self-contained runner (python run.py on the device; needs numpy plus onnxruntime, openvino or "
        "ai-edge-litert). A LiteRT kit also holds android/benchmark.sh, which times every file with LiteRT's "
        "benchmark_model on a phone over adb.",
    )
    kit.add_argument("--out", dest="kit_out", metavar="DIR", type=Path, required=True, help="kit directory")
    _add_precision_arg(kit)
    kit.add_argument(
        "--backend",
        dest="kit_backend",
        choices=INT8_BACKENDS,
        default=None,
        help="litert: a kit of .tflite files for LiteRT (FP32 or INT8); onnxruntime or openvino: the runtime "
        "an INT8 kit's ONNX/IR models are quantized for, and run on",
    )
    _add_adapt_arg(kit)
    _add_space_args(kit)
    _add_schedule_args(kit)
    kit.set_defaults(func=run_kit)

    imp = sub.add_parser("import", help="turn a kit's results.csv into a latency table")
    imp.add_argument(
        "results",
        type=Path,
        help="the results.csv that run.py wrote, or the android/results folder that a LiteRT kit's "
        "android/benchmark.sh filled",
    )
    imp.add_argument(
        "--kit", metavar="DIR", type=Path, default=None, help="the kit directory (default: where results.csv is)"
    )
    imp.add_argument(
        "--name", dest="import_name", metavar="NAME", default=None, help="table name (default: from the device)"
    )
    imp.add_argument(
        "--out", dest="import_out", metavar="PATH", type=Path, default=None, help="write the table to this path"
    )
    add_json_flag(imp, "profile-import", dest="import_json")
    imp.set_defaults(func=run_import)
    estimate.register(sub)


def _add_precision_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        default="fp32",
        help=f"{' or '.join(PROFILE_PRECISIONS)} (default fp32): int8 times every model quantized as "
        "`quadnas export --precision int8` quantizes networks (onnxruntime and openvino)",
    )


def _add_adapt_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--adapt",
        metavar="SOURCE",
        default=None,
        help="adapt the table SOURCE (name, alias or path; estimated, or measured on another host) from "
        f"--networks whole networks (default {ADAPT_NETWORKS}) instead of measuring every op spec",
    )


def _add_space_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default=None, help="search space YAML or shipped name (default quadranet-t)")
    parser.add_argument("--resolution", type=int, default=None, help="input resolution (default: the space's)")


def _add_schedule_args(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--rounds", type=positive_int, default=None, help=f"timed rounds per op (default {d.rounds})")
    parser.add_argument(
        "--round-ms",
        type=positive_float,
        default=d.round_ms,
        help=f"minimum length of a round in ms: short ops repeat more (default {d.round_ms:g})",
    )
    parser.add_argument(
        "--window", type=positive_int, default=d.window, help=f"ops measured interleaved at a time (default {d.window})"
    )
    parser.add_argument(
        "--calibration-nets",
        "--networks",
        dest="networks",
        metavar="N",
        type=int,
        default=None,
        help=f"random whole networks for the calibration (default {d.networks}) or the adaptation "
        f"(default {ADAPT_NETWORKS})",
    )
    parser.add_argument(
        "--network-rounds",
        type=positive_int,
        default=d.network_rounds,
        help=f"timed rounds per network of --adapt (default {d.network_rounds}); a profile times its calibration "
        "networks round for round with the ops",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the op order and the networks")


def _settings(args: argparse.Namespace) -> ProfileSettings:
    """The schedule the options ask for; with --adapt, one-line errors for options it contradicts."""
    from quadnas.latency.measure import check_networks

    if args.adapt is not None and args.rounds is not None:
        raise QuadnasError("--rounds times op specs, which --adapt does not measure: drop --rounds (or --adapt)")
    networks = args.networks if args.networks is not None else ADAPT_NETWORKS if args.adapt else DEFAULTS.networks
    if args.adapt is not None:
        check_networks(networks)
    elif networks < 1:
        raise QuadnasError(f"--networks must be at least 1, got {networks}: e.g. --networks {DEFAULTS.networks}")
    return ProfileSettings(
        rounds=args.rounds or DEFAULTS.rounds,
        round_ms=args.round_ms,
        window=args.window,
        networks=networks,
        network_rounds=args.network_rounds,
        seed=args.seed,
    )


def _space(args: argparse.Namespace, source: LatencyTable | None = None) -> SearchSpace:
    """--space (default: the space of the table to adapt, else quadranet-t) at --resolution; a table
    to adapt must cover it."""
    from quadnas.latency.measure import check_source, load_table_space, space_at
    from quadnas.space import SearchSpace

    named = SearchSpace.load(args.space) if args.space or source is None else load_table_space(source)
    space = space_at(named, args.resolution)
    if source is not None:
        check_source(source, space)
    return space


def _source(args: argparse.Namespace) -> LatencyTable | None:
    """The table --adapt names, or None."""
    from quadnas.latency import load_device_table

    return None if args.adapt is None else load_device_table(args.adapt)


def table_path(name: str | None, out: Path | None) -> Path:
    """`--out` if given, else the user table of `--name`."""
    if out is not None:
        return out
    if not name:
        raise QuadnasError(f"name the table: --name NAME (writes {user_tables_dir()}/NAME.csv) or --out PATH")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise QuadnasError(
            f"table name '{name}' may hold only letters, digits, '.', '_' and '-': use --out PATH to write elsewhere"
        )
    return user_tables_dir() / f"{name}.csv"


def _summary(table: LatencyTable, seconds: float | None = None) -> None:
    c = table.meta.calibration
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    console.print(f"[green]wrote[/] {table.path}: {len(table)} op specs{took}")
    error = f", held-out error {c.error_text()}" if c.error_text() else ""
    adapted = table.meta.adapted
    if table.meta.provenance == "adapted" and adapted is not None and adapted.fit is not None:
        console.print(
            f"adapted {adapted.source.name} ({adapted.source.provenance}) on {c.networks} networks: rows x "
            f"{adapted.fit.global_scale:.4f} (x kind/stage factors, + kernel/expansion shifts) "
            f"+ {c.b_ms:.3f} ms{error.replace('held-out', 'leave-one-out')}",
            highlight=False,
        )
    else:
        console.print(f"calibration on {c.networks} networks: measured = {c.a:.4f} x sum + {c.b_ms:.3f} ms{error}")
    host = table.meta.host
    console.print(
        f"host: {host.describe()} (fingerprint {table.meta.host_fingerprint})"
        if host is not None
        else "host: not recorded (results of a kit from before quadnas recorded hosts)",
        highlight=False,
    )


def profile_fields(table: LatencyTable) -> dict[str, Any]:
    """The keys `quadnas.profile/1` and `quadnas.profile-import/1` share: the table written, its op specs and host."""
    host, adapted = table.meta.host, table.meta.adapted
    return {
        "table": table_fields(table),
        "op_specs": len(table),
        "target": table.meta.target,
        "clock": table.meta.clock,
        "host_description": None if host is None else host.describe(),
        "host_fingerprint": table.meta.host_fingerprint,
        "adapted_from": adapted.source.model_dump(mode="json") if adapted is not None else None,
    }


def run_profile(args: argparse.Namespace) -> int:
    from quadnas.latency.measure import adapt, get_backend, profile

    out = table_path(args.name, args.out)
    settings = _settings(args)
    source = _source(args)
    space = _space(args, source)
    backend = get_backend(args.backend, args.target, args.threads, clock=args.clock, precision=args.precision)
    if not args.json:
        work = (
            f"adapting {source.name} ({source.meta.provenance}) from {settings.networks} networks of space "
            f"'{space.name}' ({space.config.resolution}px)"
            if source is not None
            else f"profiling space '{space.name}' ({len(space.all_op_specs())} op specs, {space.config.resolution}px)"
        )
        console.print(
            f"{work} on {backend.name} {backend.version} / {backend.target} ({backend.device_name}), "
            f"{backend.threads} thread(s), {backend.clock} clock, {backend.precision} -> {out}"
        )
    start = time.perf_counter()
    progress = progress_for(err_console)
    if source is not None:
        table = adapt(source, space, backend, out, settings, restart=args.restart, progress=progress)
    else:
        table = profile(space, backend, out, settings, restart=args.restart, progress=progress)
    seconds = time.perf_counter() - start
    if args.json:
        print_json("profile", {**profile_fields(table), "seconds": seconds})
    else:
        _summary(table, seconds)
    return 0


def run_kit(args: argparse.Namespace) -> int:
    from quadnas.latency.measure import write_kit

    settings = _settings(args)
    source = _source(args)
    space = _space(args, source)
    if args.kit_backend not in (None, "litert") and args.precision != "int8":
        raise QuadnasError(
            "--backend names the runtime an INT8 kit is quantized for; an FP32 kit runs on either: drop --backend "
            "or add --precision int8 (or --backend litert for a kit of .tflite files)"
        )
    manifest = write_kit(
        args.kit_out,
        space,
        settings,
        progress=progress_for(err_console),
        adapt_from=source,
        precision=args.precision,
        backend=args.kit_backend,
    )
    ops = 0 if source is not None else len(space.all_op_specs())
    adapting = f", adapting {source.name}" if source is not None else ""
    int8 = f", {args.precision.upper()} for {args.kit_backend}" if args.kit_backend else ""
    console.print(
        f"[green]wrote[/] kit {manifest.parent} ({ops} op specs, {settings.networks} networks{adapting}{int8})"
    )
    runtimes = args.kit_backend or "onnxruntime|openvino"
    console.print(
        f"on the device: python {manifest.parent}/run.py --backend {runtimes} --device CPU "
        f"--threads 1; then here: quadnas profile import {manifest.parent}/results.csv --name NAME",
        highlight=False,
    )
    if args.kit_backend == "litert":
        console.print(
            f"on Android (no Python): BENCHMARK_MODEL=path/to/benchmark_model sh {manifest.parent}/android/"
            f"benchmark.sh; then here: quadnas profile import {manifest.parent}/android/results --name NAME",
            highlight=False,
        )
    return 0


def run_import(args: argparse.Namespace) -> int:
    from quadnas.latency.measure import import_results

    table = import_results(args.results, args.kit)
    name = args.import_name or _slug(f"{table.meta.device}-{table.meta.backend}-{table.meta.target}")
    table.write(table_path(name, args.import_out))
    if args.import_json:
        print_json("profile-import", profile_fields(table))
    else:
        _summary(table)
    return 0


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
