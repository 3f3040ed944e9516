"""Adapted tables vs fully profiled vs the raw source, on held-out whole networks measured here.

For each backend (onnxruntime, OpenVINO) and thread count (1, 2): measure held-out random archs
end to end (none of them an adaptation or calibration network); profile the space fully
(`quadnas profile`); adapt each source from N whole networks (`quadnas profile --adapt`) for
every N; compare every table's predictions with the held-out measurements. Sources: (a) the
shipped host table of the backend (`amd-epyc-<backend>-1t`, measured on another host, at one
thread), (b) the estimated `cpu` table (cortex-a76). Both sources adapt from the same networks
for a given N (timed once, in the first source's `adapt`). At the end the held-out networks are
measured again: how far apart the two measurements are is the floor no table can beat on this
machine at this time. Writes JSON and a PNG.

    python scripts/bench_adapt.py                       # the full benchmark (quiet machine: ~20-25 min)
    python scripts/bench_adapt.py --quick --space tiny  # a smoke test (a minute or two)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from quadnas.latency.devices import load_device_table  # noqa: E402
from quadnas.latency.host import Host  # noqa: E402
from quadnas.latency.measure._adapt import adapt, adaptation_archs, adapted_table  # noqa: E402
from quadnas.latency.measure._profile import measure_networks, profile  # noqa: E402
from quadnas.latency.measure._validate import compare  # noqa: E402
from quadnas.latency.measure.backends import get_backend  # noqa: E402
from quadnas.latency.measure.settings import ProfileSettings  # noqa: E402
from quadnas.latency.predictor import LatencyPredictor  # noqa: E402
from quadnas.latency.table import LatencyTable  # noqa: E402
from quadnas.portable.timing import Timing  # noqa: E402
from quadnas.space import Arch, SearchSpace  # noqa: E402

GOAL = {"networks": 10, "within_5_pct": 90.0, "within_10_pct": 100.0, "kendall_tau": 0.95, "seconds": 60.0}


def sources(space: SearchSpace, backend: str) -> dict[str, LatencyTable | str]:
    """(a) the shipped host table of `backend`, (b) the estimated cpu table; for a space they do not
    cover, (b) is recomputed from its cost model and (a) is a reason it is left out."""
    host = load_device_table(f"amd-epyc-{backend}-1t")
    cpu = load_device_table("cpu")
    found: dict[str, LatencyTable | str] = {}
    covers = host.meta.resolution == space.config.resolution and not host.missing(space.all_op_specs())
    found["host-table"] = host if covers else f"{host.name} does not cover space '{space.name}'"
    if cpu.meta.resolution != space.config.resolution or cpu.missing(space.all_op_specs()):
        if cpu.meta.estimate is None:
            raise SystemExit(f"table {cpu.name} has no cost model to price space '{space.name}' with")
        model = cpu.meta.estimate.device_model()
        rows = []
        for spec in space.all_op_specs():
            ms = model.spec_ms(spec, space.config.stem_patch)
            rows.append({**spec.as_row(), "latency_ms": ms, "p10_ms": ms, "p90_ms": ms, "runs": 0})
        meta = cpu.meta.model_copy(
            update={
                "space": space.name,
                "space_fingerprint": space.fingerprint(),
                "resolution": space.config.resolution,
            }
        )
        cpu = LatencyTable(meta, path=cpu.path).with_rows(rows)
    found["estimated-cpu"] = cpu
    return found


def measure(backend: Any, space: SearchSpace, archs: list[Arch], settings: ProfileSettings) -> np.ndarray:
    timings: dict[Arch, Timing] = {}
    measure_networks(backend, space, archs, settings, lambda a, t: timings.__setitem__(a, t))
    return np.array([timings[a].median_ms for a in archs])


def figures(table: LatencyTable, space: SearchSpace, held: list[Arch], measured: np.ndarray) -> dict[str, Any]:
    predicted = LatencyPredictor(table, space).predict_many(held)
    return {**compare(measured, predicted), "predicted_ms": predicted.round(4).tolist()}


def bench_case(
    backend_name: str, threads: int, space: SearchSpace, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    backend = get_backend(backend_name, None, threads, clock=args.clock)
    settings = ProfileSettings(network_rounds=args.network_rounds, **({"round_ms": 5.0} if args.quick else {}))
    full_settings = ProfileSettings(
        **({"rounds": 3, "round_ms": 5.0, "window": 4, "networks": 4, "network_rounds": 2} if args.quick else {})
    )
    used = {a for n in args.networks for a in adaptation_archs(space, n, args.seed)}
    used |= set(space.spread(full_settings.networks, full_settings.seed))
    held = space.spread(args.held_out, seed=args.seed + 99, exclude=used)
    print(f"[{backend_name} {threads}t] measuring {len(held)} held-out networks", flush=True)
    measured = measure(backend, space, held, settings)

    start = time.perf_counter()
    full = profile(space, backend, work / f"full-{backend_name}-{threads}t.csv", full_settings, restart=True)
    full_s = time.perf_counter() - start
    print(f"[{backend_name} {threads}t] full profile in {full_s:.0f} s", flush=True)
    case: dict[str, Any] = {
        "backend": backend_name,
        "threads": threads,
        "clock": backend.clock,
        "held_out": [str(a) for a in held],
        "measured_ms": measured.round(4).tolist(),
        "full": {"seconds": full_s, **figures(full, space, held, measured)},
        "sources": {},
    }
    found = sources(space, backend_name)
    usable = {k: v for k, v in found.items() if isinstance(v, LatencyTable)}
    for key, reason in found.items():
        if isinstance(reason, str):
            case["sources"][key] = {"skipped": reason}
    for key, source in usable.items():
        case["sources"][key] = {"table": source.name, "raw": figures(source, space, held, measured), "adapted": {}}
    for n in args.networks:
        first, *others = usable
        net_settings = ProfileSettings(
            network_rounds=settings.network_rounds, round_ms=settings.round_ms, networks=n, seed=args.seed
        )
        start = time.perf_counter()
        table = adapt(usable[first], space, backend, work / f"{first}-{backend_name}-{threads}t-{n}.csv", net_settings)
        seconds = time.perf_counter() - start
        timed = [
            (space.parse(p.arch), Timing(p.measured_ms, p.p10_ms, p.p90_ms, p.runs)) for p in table.meta.networks()
        ]
        tables = {first: table}
        for key in others:
            tables[key] = adapted_table(
                usable[key], space, backend.describe(), net_settings, Host.current(), timed, "measured here"
            )
        for key, adapted in tables.items():
            c = adapted.meta.calibration
            case["sources"][key]["adapted"][str(n)] = {
                "seconds": seconds,
                "loo_mape_pct": c.mape_pct,
                "loo_max_err_pct": c.max_err_pct,
                **figures(adapted, space, held, measured),
            }
        print(f"[{backend_name} {threads}t] adapted from {n} networks in {seconds:.0f} s", flush=True)
    again = measure(backend, space, held, settings)  # the noise floor: the same networks, minutes later
    case["repeat"] = {**compare(measured, again), "measured_ms": again.round(4).tolist()}
    print(f"[{backend_name} {threads}t] held-out networks measured again: {case['repeat']['mape_pct']:.2f}% apart")
    return case


def goal_met(case: dict[str, Any], source: dict[str, Any]) -> bool | None:
    row = source.get("adapted", {}).get(str(GOAL["networks"]))
    if row is None:
        return None
    return bool(
        row["within_5_pct"] >= GOAL["within_5_pct"]
        and row["within_10_pct"] >= GOAL["within_10_pct"]
        and row["kendall_tau"] >= GOAL["kendall_tau"]
        and row["seconds"] <= GOAL["seconds"]
    )


def table_lines(cases: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | threads | table | networks | seconds | within ±5% | within ±10% | MAPE | max | Kendall τ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def row(case: dict[str, Any], name: str, n: str, r: dict[str, Any]) -> str:
        seconds = f"{r['seconds']:.0f}" if "seconds" in r else "—"
        return (
            f"| {case['backend']} | {case['threads']} | {name} | {n} | {seconds} | {r['within_5_pct']:.0f}% | "
            f"{r['within_10_pct']:.0f}% | {r['mape_pct']:.2f}% | {r['max_err_pct']:.1f}% | {r['kendall_tau']:.3f} |"
        )

    for case in cases:
        if "repeat" in case:
            lines.append(row(case, "the held-out networks measured again", "—", case["repeat"]))
        lines.append(row(case, "full profile", "—", case["full"]))
        for key, source in case["sources"].items():
            if "skipped" in source:
                lines.append(f"| {case['backend']} | {case['threads']} | {key} | skipped: {source['skipped']} |")
                continue
            lines.append(row(case, f"{key} raw", "0", source["raw"]))
            for n, r in source["adapted"].items():
                lines.append(row(case, f"{key} adapted", n, r))
    return lines


def plot(cases: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for case in cases:
        label = f"{case['backend']} {case['threads']}t"
        for key, source in case["sources"].items():
            if "adapted" not in source:
                continue
            ns = [int(n) for n in source["adapted"]]
            axes[0].plot(ns, [r["within_5_pct"] for r in source["adapted"].values()], "o-", label=f"{label} {key}")
            axes[1].plot(ns, [r["mape_pct"] for r in source["adapted"].values()], "o-", label=f"{label} {key}")
        axes[0].axhline(case["full"]["within_5_pct"], ls=":", lw=1, color="grey")
        axes[1].axhline(case["full"]["mape_pct"], ls=":", lw=1, color="grey")
    axes[0].axhline(GOAL["within_5_pct"], color="red", lw=1, label="goal (from 10 networks)")
    axes[0].set(xlabel="adaptation networks", ylabel="held-out archs within ±5% (%)", ylim=(0, 102))
    axes[1].set(xlabel="adaptation networks", ylabel="held-out MAPE (%)", yscale="log")
    axes[0].legend(fontsize=6)
    fig.suptitle("Adapted tables on held-out networks (dotted: fully profiled)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="quadranet-t")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--networks", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--held-out", type=int, default=30)
    parser.add_argument("--network-rounds", type=int, default=ProfileSettings().network_rounds)
    parser.add_argument("--clock", default="wall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke test: 3 and 5 networks, 6 held out, 2 rounds")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_adapt.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.networks, args.held_out, args.network_rounds = [3, 5], 6, 2
    space = SearchSpace.load(args.space)
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-adapt-") as tmp:
        for backend in args.backends:
            for threads in args.threads:
                cases.append(bench_case(backend, threads, space, args, Path(tmp)))
    for case in cases:
        for source in case["sources"].values():
            source["goal_met"] = goal_met(case, source) if "adapted" in source else None
    result = {"space": space.name, "host": Host.current().describe(), "goal": GOAL, "quick": args.quick, "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(cases, args.out.with_suffix(".png"))
    print("\n".join(table_lines(cases)))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
