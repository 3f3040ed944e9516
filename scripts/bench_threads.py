"""Latency tables at two threads: where their error came from, and whether the tables now hold.

Every step reads and extends docs/figures/threads/bench_threads.json (each entry records the load average
at its start and end); the steps that time need a quiet machine, `prepare` does not:

    python scripts/bench_threads.py prepare               # export every network and op the others time
    python scripts/bench_threads.py diagnose              # runtime settings: models alone vs interleaved
    python scripts/bench_threads.py tables CASE [CASE...] # profile a table (or take the shipped one), validate it
    python scripts/bench_threads.py report                # the figures of docs/benchmarks.md, from the JSON

`diagnose` times the same files under several runtime settings, each model alone (one session open,
as a deployment runs it) and interleaved with the others (several sessions open, rounds alternating:
how the profiler and `quadnas validate` time them). A CASE profiles `quadranet-t` at 224 px with the
profiler's defaults (`quadnas profile --backend B --threads T [--precision int8] --clock wall`), then
validates the table as `quadnas validate` does (every held-out network measured twice: the repeat error)
on the same HELD_OUT networks for every case. The first case of each runtime, precision and thread count
also times every held-out network alone in one session under each setting of ALONE_SETTINGS: what a
deployment would measure. CASES names what each case times; 'old' is this code with the runtime settings
quadnas timed with before (onnxruntime's pools spinning, OpenVINO's threads pinned), 'window6' this code
with ops timed 6 at a time (each op's rounds then fall within its window's few seconds instead of spreading
over the whole run), and 'shipped' the shipped 1-thread table.

    python scripts/bench_threads.py rows BACKEND:PRECISION:THREADS [...]  # rows of two profiles, both windows

`rows` profiles each table twice with ops timed 6 at a time and twice with all at once, and compares each
pair row by row: how far a row moves between two profiles of one machine, beyond what moves them all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.latency.adaptation import fit_adaptation, group
from quadnas.latency.devices import load_device_table
from quadnas.latency.host import Host
from quadnas.latency.measure._profile import profile
from quadnas.latency.measure._validate import FLOOR_FACTOR, NetworkFiles, compare, validate
from quadnas.latency.measure.backends import OnnxBackend, get_backend
from quadnas.latency.measure.builders import op_module
from quadnas.latency.measure.models import write_model
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import PROFILE_PRECISIONS
from quadnas.latency.table import LatencyTable
from quadnas.nn.blocks import op_input_shape
from quadnas.portable import sessions
from quadnas.portable.timing import Schedule, TimedSession, Timing, measure_interleaved
from quadnas.space import Arch, OpSpec, SearchSpace

OUT = Path(os.environ.get("QUADNAS_BENCH_OUT", "docs/figures/threads"))  # a smoke run: another folder
JSON = OUT / "bench_threads.json"
MODELS = Path(os.environ.get("QUADNAS_BENCH_MODELS", "/tmp/quadnas-bench-threads-models"))
SPACE = os.environ.get("QUADNAS_BENCH_SPACE", "quadranet-t")  # a smoke run: tiny
HELD_OUT, HELD_OUT_SEED = 20, 1
DIAGNOSE_NETWORKS = 6
# a deployment's view: one session, rounds of >= 30 ms after a 50 ms warm-up, as the profiler's rounds
ALONE = Schedule(rounds=7, round_s=0.03, window=1, warmup_s=0.05)
GOAL = {"within_5_pct": 90.0, "within_10_pct": 100.0, "profile_s": 120.0}

RUNTIMES = {"ort": "onnxruntime", "ov": "openvino"}  # the runtimes a case times, by their short names
CASES: dict[str, dict[str, Any]] = {
    f"{short}-{precision}-{threads}t-{method}": {
        "backend": backend,
        "precision": precision,
        "threads": threads,
        "method": method,
    }
    for short, backend in RUNTIMES.items()
    for precision in PROFILE_PRECISIONS
    for threads in (1, 2)
    for method in ("new", "old", "window6", "shipped")
    if not (method == "shipped" and (threads != 1 or precision != "fp32"))
}
OLD_WINDOW = 6  # 'window6': ops timed in windows of this many (the profiler's default before all at once)
ORT_SETTINGS = {
    "spinning (onnxruntime's default)": {},
    "no spinning": {"session.intra_op.allow_spinning": "0"},
    "spinning stops when a call returns": {"session.force_spinning_stop": "1"},
}
OLD_OPENVINO = {  # the properties quadnas compiled OpenVINO models with before this benchmark
    "INFERENCE_NUM_THREADS": "2",
    "PERFORMANCE_HINT": "LATENCY",
    "NUM_STREAMS": "1",
    "INFERENCE_PRECISION_HINT": "f32",
}
OV_SETTINGS = {
    "threads pinned (OpenVINO's default)": OLD_OPENVINO,
    "threads not pinned": {**OLD_OPENVINO, "ENABLE_CPU_PINNING": "NO"},
}
ALONE_SETTINGS = {"onnxruntime": ORT_SETTINGS, "openvino": OV_SETTINGS}


# ---- the JSON ---------------------------------------------------------------------------------------
def load() -> dict[str, Any]:
    return json.loads(JSON.read_text()) if JSON.exists() else {}


def save(part: str, key: str, value: Any) -> None:
    """Store `value` as `part[key]` of the JSON, keeping everything else."""
    found = load()
    found.setdefault(part, {})[key] = value
    found["host"] = Host.current().model_dump(mode="json")
    OUT.mkdir(parents=True, exist_ok=True)
    JSON.write_text(json.dumps(found, indent=1) + "\n")


@contextlib.contextmanager
def stamped(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """`record` with the load average and time at the start and end of the block."""
    record["load_start"], record["started"] = os.getloadavg(), time.strftime("%H:%M:%S", time.gmtime())
    start = time.perf_counter()
    yield record
    record["load_end"], record["seconds"] = os.getloadavg(), round(time.perf_counter() - start, 1)
    print(f"  load {record['load_start'][0]:.2f} -> {record['load_end'][0]:.2f}, {record['seconds']} s", flush=True)


# ---- what is timed ----------------------------------------------------------------------------------
def space() -> SearchSpace:
    return SearchSpace.load(SPACE)


def held_out(s: SearchSpace) -> list[Arch]:
    """The networks every case is validated on: none of the profiler's calibration networks (seed 0)."""
    calibration = s.spread(ProfileSettings().networks, ProfileSettings().seed)
    return s.spread(HELD_OUT, HELD_OUT_SEED, exclude=calibration)


def diagnose_ops(s: SearchSpace) -> list[OpSpec]:
    """One block of each stage (the smallest kernel and expansion), a downsample and the head."""
    specs = s.all_op_specs()
    blocks = [x for x in specs if x.op == "quadra_block" and x.kernel == 3 and x.expansion == 2 and not x.enhance]
    return [*blocks, next(x for x in specs if x.op == "downsample"), next(x for x in specs if x.op == "head")]


def op_file(s: SearchSpace, spec: OpSpec) -> Path:
    out = MODELS / "ops" / f"{spec}.onnx".replace(" ", "_").replace("/", "_")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        write_model(op_module(spec, s), op_input_shape(spec), out, "onnxruntime", "fp32")
    return out


@contextlib.contextmanager
def method(name: str) -> Iterator[None]:
    """'old': the runtime settings quadnas timed with before this benchmark (onnxruntime's pools spinning,
    OpenVINO's OLD_OPENVINO); else the code's own."""
    if name != "old":
        yield
        return
    entries, config = sessions.ort_session_entries, sessions.openvino_config
    sessions.ort_session_entries = lambda threads: {}
    sessions.openvino_config = lambda threads: {**OLD_OPENVINO, "INFERENCE_NUM_THREADS": str(threads)}
    try:
        yield
    finally:
        sessions.ort_session_entries, sessions.openvino_config = entries, config


def opener(backend: str, threads: int, setting: dict[str, str]) -> Callable[[Path], TimedSession]:
    if backend == "onnxruntime":
        return lambda path: sessions.OnnxRuntimeSession(path, threads, None, "wall", entries=setting)
    return lambda path: sessions.OpenVinoSession(path, threads, None, "wall", config=setting)


def time_files(paths: dict[str, Path], open_path: Callable[[Path], TimedSession], window: int) -> dict[str, float]:
    """Median ms per call of each file, `window` sessions open at a time (1: each alone)."""
    found: dict[str, Timing] = {}
    schedule = Schedule(ALONE.rounds, ALONE.round_s, window, ALONE.warmup_s)
    measure_interleaved(list(paths), lambda key: open_path(paths[key]), schedule, found.__setitem__)
    return {key: round(found[key].median_ms, 4) for key in paths}


# ---- steps ------------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace) -> None:
    """Export the held-out networks for every runtime and precision the cases time, and the diagnosed ops."""
    s = space()
    held = held_out(s)
    for spec in diagnose_ops(s):
        op_file(s, spec)
    with NetworkFiles(s, keep_in=MODELS) as files:
        for backend, precision in args.kinds:
            b = get_backend(backend, threads=1, precision=precision)
            assert isinstance(b, OnnxBackend)
            for i, arch in enumerate(held):
                files.path(b, arch)
                print(f"{backend} {precision}: {i + 1}/{len(held)} {arch}", flush=True)


def diagnose(args: argparse.Namespace) -> None:
    """Each runtime setting: the same models timed alone and interleaved, at `threads`; alone twice, in turns."""
    s = space()
    held = held_out(s)[:DIAGNOSE_NETWORKS]
    with NetworkFiles(s, keep_in=MODELS) as files:
        ort = get_backend("onnxruntime", threads=1)
        assert isinstance(ort, OnnxBackend)
        networks = {str(a): files.path(ort, a) for a in held}
    ops = {str(spec): op_file(s, spec) for spec in diagnose_ops(s)}
    for backend in args.backends:
        for kind, paths in (("networks", networks), ("ops", ops)):
            if backend == "openvino" and kind == "ops":
                continue  # the networks decide; compiling ops is slow
            print(f"diagnose {backend} {kind} at {args.threads} threads", flush=True)
            settings = ALONE_SETTINGS[backend]
            record: dict[str, Any] = {"threads": args.threads, "models": list(paths), "settings": {}}
            with stamped(record):
                alone: dict[str, list[dict[str, float]]] = {name: [] for name in settings}
                for _ in range(2):  # in turns, so that a drift of the machine hits every setting alike
                    for name, setting in settings.items():
                        alone[name].append(time_files(paths, opener(backend, args.threads, setting), 1))
                for name, setting in settings.items():
                    inter = time_files(paths, opener(backend, args.threads, setting), len(paths))
                    alone_ms = {k: float(np.median([a[k] for a in alone[name]])) for k in paths}
                    record["settings"][name] = {
                        "setting": setting,
                        "alone_ms": alone_ms,
                        "alone_runs_ms": alone[name],
                        "interleaved_ms": inter,
                        "interleaved_over_alone": {k: round(inter[k] / alone_ms[k], 4) for k in paths},
                    }
                    ratios = list(record["settings"][name]["interleaved_over_alone"].values())
                    print(f"  {name}: interleaved/alone {np.round(ratios, 3).tolist()}", flush=True)
            save("diagnose", f"{backend}-{kind}-{args.threads}t", record)
    save("diagnose", "timer", {"perf_counter_resolution_s": time.get_clock_info("perf_counter").resolution})


def case_table(name: str, case: dict[str, Any], s: SearchSpace, record: dict[str, Any]) -> LatencyTable:
    if case["method"] == "shipped":
        table = load_device_table(f"amd-epyc-{case['backend']}-1t")
        record["table"] = str(table.path)
        return table
    backend = get_backend(case["backend"], threads=case["threads"], clock="wall", precision=case["precision"])
    out = OUT / f"{name}.csv"
    settings = ProfileSettings(window=OLD_WINDOW) if case["method"] == "window6" else ProfileSettings()
    start = time.perf_counter()
    table = profile(s, backend, out, settings, restart=True)
    record["profile_s"] = round(time.perf_counter() - start, 1)
    record["table"] = str(out)
    print(f"  profiled in {record['profile_s']} s", flush=True)
    return table


def groups_variant(table: LatencyTable, s: SearchSpace, held: list[Arch]) -> list[float] | None:
    """The predictions of a per-kind and per-stage correction (the adaptation model) fitted to the table's own
    calibration networks, instead of its `a * sum + b`: a method variant, on the same measurements."""
    points = table.meta.networks() if table.meta.space == s.name else []
    if len(points) < 3:
        return None
    fit = fit_adaptation(table, s, [s.parse(p.arch) for p in points], [p.measured_ms for p in points])
    rows = {spec: fit.row_ms(spec, float(table.lookup([spec])[0])) for spec in s.all_op_specs()}
    return [round(fit.offset_ms + sum(rows[spec] for spec in s.op_specs(a)), 4) for a in held]


def tables(args: argparse.Namespace) -> None:
    s = space()
    held = held_out(s)
    for name in args.cases:
        case = CASES[name]
        print(f"case {name}", flush=True)
        record: dict[str, Any] = {**case, "space": s.name}
        with stamped(record), method(case["method"]), NetworkFiles(s, keep_in=MODELS) as files:
            table = case_table(name, case, s, record)
            meta = table.meta
            record["runtime_config"] = meta.measurement.runtime_config if meta.measurement else None
            record["calibration"] = meta.calibration.model_dump()
            result = validate(table, s, settings=ProfileSettings(), files=files, archs=held)
            record["validate"] = result.as_dict()
            record["floor_note"] = result.floor_note()
            print(f"  {result.floor_note()}", flush=True)
            variant = groups_variant(table, s, held)
            if variant is not None:
                record["groups_variant"] = {
                    "predicted_ms": variant,
                    **compare(np.array(result.measured_ms), np.array(variant)),
                }
            alone_key = f"{case['backend']}-{case['precision']}-{case['threads']}t"
            if case["threads"] > 1 and case["precision"] == "fp32" and alone_key not in load().get("alone", {}):
                save("alone", alone_key, time_alone(case, s, held, files))
        save("cases", name, record)


def time_alone(case: dict[str, Any], s: SearchSpace, held: list[Arch], files: NetworkFiles) -> dict[str, Any]:
    """Each held-out network alone in one session, under each runtime setting (a deployment's view)."""
    backend = get_backend(case["backend"], threads=1, precision=case["precision"])
    assert isinstance(backend, OnnxBackend)
    paths = {str(a): files.path(backend, a) for a in held}
    record: dict[str, Any] = {"archs": list(paths), "settings": {}}
    with stamped(record):
        for name, setting in ALONE_SETTINGS[case["backend"]].items():
            timed = time_files(paths, opener(case["backend"], case["threads"], setting), 1)
            record["settings"][name] = {"setting": setting, "alone_ms": [timed[k] for k in paths]}
            print(f"  alone, {name}: done", flush=True)
    return record


def table_kind(text: str) -> tuple[str, str, str]:
    """`backend:precision:threads` (e.g. onnxruntime:fp32:2), checked so that a typo is one line."""
    parts = text.split(":")
    runtimes = RUNTIMES.values()
    if len(parts) != 3 or parts[0] not in runtimes or parts[1] not in PROFILE_PRECISIONS or not parts[2].isdigit():
        raise argparse.ArgumentTypeError(
            f"'{text}' is not backend:precision:threads: e.g. onnxruntime:fp32:2 (backends: {', '.join(runtimes)})"
        )
    return parts[0], parts[1], parts[2]


def rows(args: argparse.Namespace) -> None:
    """Each table profiled twice per op window (6; all at once), the two compared row by row."""
    s = space()
    specs = s.all_op_specs()
    for backend_name, precision, threads in args.kinds:
        for window in (OLD_WINDOW, ProfileSettings().window):
            record: dict[str, Any] = {"window": window, "tables": []}
            with stamped(record):
                found = []
                for i in range(2):
                    backend = get_backend(backend_name, threads=int(threads), clock="wall", precision=precision)
                    out = OUT / f"rows-{backend_name}-{precision}-{threads}t-w{window}-{i}.csv"
                    table = profile(s, backend, out, ProfileSettings(window=window), restart=True)
                    found.append(table.lookup(specs))
                    record["tables"].append(str(out))
                    record.setdefault("calibrations", []).append(table.meta.calibration.model_dump())
                ratio = found[1] / found[0]
                moved = ratio / np.median(ratio)  # what moves one row beyond what moves them all
                record |= {
                    "median_ratio": float(np.median(ratio)),
                    "row_moved_pct": {
                        "p10": float((np.percentile(moved, 10) - 1) * 100),
                        "p90": float((np.percentile(moved, 90) - 1) * 100),
                        "max_abs": float(np.abs(moved - 1).max() * 100),
                        "mean_abs": float(np.abs(moved - 1).mean() * 100),
                    },
                }
            print(f"{backend_name} {precision} {threads}t, window {window}: {record['row_moved_pct']}", flush=True)
            save("rows", f"{backend_name}-{precision}-{threads}t-w{window}", record)


# ---- report -----------------------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{x:.0f}%"


def report(args: argparse.Namespace) -> None:
    found = load()
    lines = ["| case | profile s | load | calibration | versus | MAPE | max | within ±5% | within ±10% | τ |"]
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in found.get("cases", {}).items():
        v, c = r["validate"], r["calibration"]
        rows = [("validate", v)]
        if v.get("repeat"):
            rows.append(("repeat (floor)", v["repeat"]))
            rows.append(("validate vs 2nd pass", compare(np.array(v["repeat_ms"]), np.array(v["predicted_ms"]))))
        if "groups_variant" in r:
            rows.append(("per-stage fit", r["groups_variant"]))
        alone = found.get("alone", {}).get(f"{r['backend']}-{r['precision']}-{r['threads']}t")
        if alone:
            for setting, a in alone["settings"].items():
                rows.append((f"alone: {setting}", compare(np.array(a["alone_ms"]), np.array(v["predicted_ms"]))))
        for i, (what, f) in enumerate(rows):
            head = (
                [name, str(r.get("profile_s", "—")), f"{r['load_start'][0]:.2f}", f"{c['a']:.3f}·sum+{c['b_ms']:.2f}"]
                if i == 0
                else ["", "", "", ""]
            )
            figures = [f"{f['mape_pct']:.2f}%", f"{f['max_err_pct']:.1f}%", pct(f["within_5_pct"])]
            lines.append(
                "| " + " | ".join([*head, what, *figures, pct(f["within_10_pct"]), f"{f['kendall_tau']:.3f}"]) + " |"
            )
        lines.append(f"|  |  |  |  | verdict: {verdict(r)} |  |  |  |  |  |")
    print("\n".join(lines))
    speedups(found)
    for key, d in found.get("rows", {}).items():
        m = d["row_moved_pct"]
        fits = ", ".join(f"a={c['a']:.3f} b={c['b_ms']:.2f} ms" for c in d.get("calibrations", []))
        print(
            f"\nrows of two profiles, {key}: all rows x{d['median_ratio']:.3f}; one row beyond that: "
            f"p10 {m['p10']:+.1f}%, p90 {m['p90']:+.1f}%, mean |{m['mean_abs']:.1f}|%, max |{m['max_abs']:.1f}|%"
            + (f"; calibrations {fits}" if fits else "")
        )
    for key, d in found.get("diagnose", {}).items():
        if key == "timer":
            print(f"\nperf_counter resolution: {d['perf_counter_resolution_s']} s")
            continue
        print(f"\n{key} (load {d['load_start'][0]:.2f} -> {d['load_end'][0]:.2f})")
        now = {"onnxruntime": sessions.ort_session_entries(2), "openvino": sessions.openvino_config(2)}
        for name, x in d["settings"].items():
            if x["setting"] == now[key.split("-")[0]]:
                name += " [quadnas now]"
            ratios = list(x["interleaved_over_alone"].values())
            alone = list(x["alone_ms"].values())
            print(
                f"  {name}: alone {np.round(alone, 2).tolist()} ms; interleaved/alone median "
                f"{np.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
            )


def speedups(found: dict[str, Any]) -> None:
    """What a second thread buys, op kind by op kind and stage by stage (rows of the 1- and 2-thread tables),
    against whole networks (the held-out networks' validation medians): ops too small to split show here."""
    for short in ("ort", "ov"):
        one, two = (
            found.get("cases", {}).get(f"{short}-fp32-1t-new"),
            found.get("cases", {}).get(f"{short}-fp32-2t-new"),
        )
        if not one or not two:
            continue
        rows = [LatencyTable.read(Path(c["table"])) for c in (one, two)]
        sums: list[dict[str, float]] = []
        for table in rows:
            by_group: dict[str, float] = {}
            for spec in table.specs():
                by_group[group(spec)] = by_group.get(group(spec), 0.0) + float(table.lookup([spec])[0])
            sums.append(by_group)
        nets = np.array(one["validate"]["measured_ms"]) / np.array(two["validate"]["measured_ms"])
        parts = ", ".join(f"{g} {sums[0][g] / sums[1][g]:.2f}x" for g in sums[0] if sums[1].get(g))
        print(f"\n{short} 1 -> 2 threads, rows summed per group: {parts}")
        spread = f"{nets.min():.2f}-{nets.max():.2f}"
        print(f"{short} 1 -> 2 threads, held-out networks: median {np.median(nets):.2f}x ({spread})")


def verdict(r: dict[str, Any]) -> str:
    """The issue's goal: >= 90% within ±5% and 100% within ±10%, or within FLOOR_FACTOR x the repeat error."""
    v = r["validate"]
    met = v["within_5_pct"] >= GOAL["within_5_pct"] and v["within_10_pct"] >= GOAL["within_10_pct"]
    floor = v.get("repeat") or {}
    by_floor = bool(floor) and v["mape_pct"] <= FLOOR_FACTOR * floor["mape_pct"]
    fast = r.get("profile_s") is None or r["profile_s"] <= GOAL["profile_s"]
    timing = "" if fast else f"; profiling {r['profile_s']} s > {GOAL['profile_s']:.0f} s"
    if met:
        return "met" + timing
    return ("met by the floor" if by_floor else "missed") + timing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    p = steps.add_parser("prepare")
    p.add_argument(
        "--kinds",
        nargs="+",
        type=lambda text: tuple(text.split(":")),
        default=[("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8")],
        help="runtime:precision pairs to export held-out networks for (onnxruntime:fp32 serves openvino too)",
    )
    p.set_defaults(func=prepare)
    d = steps.add_parser("diagnose")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    d.set_defaults(func=diagnose)
    t = steps.add_parser("tables")
    t.add_argument("cases", nargs="+", choices=sorted(CASES))
    t.set_defaults(func=tables)
    w = steps.add_parser("rows")
    w.add_argument("kinds", nargs="+", type=table_kind, help="backend:precision:threads")
    w.set_defaults(func=rows)
    r = steps.add_parser("report")
    r.set_defaults(func=report)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
