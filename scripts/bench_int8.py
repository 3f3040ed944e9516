"""INT8 vs FP32 latency tables: speed-up per op kind and stage, and the INT8 table on held-out networks.

For each backend (onnxruntime, OpenVINO) at 1 thread: profile the space in FP32 and in INT8
(`quadnas profile [--precision int8]`; tables under --work, so a rerun resumes them), then
- the speed-up FP32 / INT8 of each op kind per stage (sums of the tables' rows; quadra blocks also
  per kernel and expansion), and of whole networks: the calibration networks and the held-out ones
  (the same archs in both precisions);
- `quadnas validate` of both tables on --held-out archs (none of them a calibration network),
  against the goal of the FP32 tables: >= 90 % within ±5 %, 100 % within ±10 %.
Writes JSON (--out) and prints Markdown tables.

    python scripts/bench_int8.py                        # quadranet-t at 224: about 35 min on a quiet 2-core machine
    python scripts/bench_int8.py --backends openvino    # one backend (about half); the tables resume from --work
    python scripts/bench_int8.py --quick --space tiny   # a smoke test (2-3 min)
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.latency.host import Host
from quadnas.latency.measure import profile, validate
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.table import SPEC_COLUMNS, LatencyTable
from quadnas.space import SearchSpace

GOAL = {"within_5_pct": 90.0, "within_10_pct": 100.0}
QUICK = {"rounds": 3, "round_ms": 5.0, "window": 4, "networks": 4, "network_rounds": 2}


def group_of(row: Any, stages: dict[int, int]) -> tuple[str, str]:
    """(op kind, stage) of a table row: quadra blocks by stage (1 = the highest resolution) and k/e."""
    if row.op == "quadra_block":
        return f"quadra_block k{row.kernel}e{row.expansion}", f"stage {stages[row.height]}"
    if row.op == "downsample":
        return "downsample", f"into stage {stages.get(row.height // 2, '?')}"
    return str(row.op), "-"


def speedups(fp32: LatencyTable, int8: LatencyTable) -> list[dict[str, Any]]:
    """FP32 / INT8 per (op kind, stage): ratio of the rows' sums, and the median row ratio."""
    both = fp32.rows.merge(int8.rows, on=list(SPEC_COLUMNS), suffixes=("_fp32", "_int8"))
    blocks = both[both.op == "quadra_block"]
    stages = {h: i + 1 for i, h in enumerate(sorted(set(blocks.height), reverse=True))}
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for row in both.itertuples():
        groups[group_of(row, stages)].append((row.latency_ms_fp32, row.latency_ms_int8))
        if row.op == "quadra_block":
            groups[("quadra_block (all)", f"stage {stages[row.height]}")].append(
                (row.latency_ms_fp32, row.latency_ms_int8)
            )
    out = []
    for (kind, stage), pairs in sorted(groups.items()):
        f, i = np.array(pairs).T
        ratios = f[i > 0] / i[i > 0]
        out.append(
            {
                "kind": kind,
                "stage": stage,
                "rows": len(pairs),
                "fp32_ms": float(f.sum()),
                "int8_ms": float(i.sum()),
                "speedup": float(f.sum() / i.sum()) if i.sum() > 0 else None,
                "median_row_speedup": float(np.median(ratios)) if len(ratios) else None,
            }
        )
    return out


def ratio_summary(fp32_ms: dict[str, float], int8_ms: dict[str, float]) -> dict[str, Any]:
    """FP32 / INT8 of the networks (by arch) timed in both precisions: count, median, min, max."""
    ratios = np.array([fp32_ms[k] / int8_ms[k] for k in fp32_ms if k in int8_ms])
    if not len(ratios):
        return {"networks": 0}
    return {
        "networks": len(ratios),
        "median": float(np.median(ratios)),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
    }


def measured_by_arch(table: LatencyTable) -> dict[str, float]:
    """The calibration networks a table timed whole, by arch (the same archs in both tables: same seed)."""
    return {p.arch: p.measured_ms for p in table.meta.networks()}


def bench_backend(backend: str, space: SearchSpace, args: argparse.Namespace) -> dict[str, Any]:
    settings = ProfileSettings(**(QUICK if args.quick else {}))
    check = ProfileSettings(**({"round_ms": 5.0, "network_rounds": 2} if args.quick else {}))
    case: dict[str, Any] = {"backend": backend, "tables": {}, "validation": {}}
    tables = {}
    for precision in ("fp32", "int8"):
        path = args.work / f"{space.name}-{backend}-1t-{precision}.csv"
        start = time.perf_counter()
        runtime = get_backend(backend, None, 1, clock=args.clock, precision=precision)
        tables[precision] = profile(space, runtime, path, settings)
        seconds = time.perf_counter() - start
        c = tables[precision].meta.calibration
        case["tables"][precision] = {
            "path": str(path),
            "seconds": seconds,
            "clock": runtime.clock,
            "calibration": c.model_dump(),
        }
        print(f"[{backend} {precision}] profiled in {seconds:.0f} s ({path})", flush=True)
    case["ops"] = speedups(tables["fp32"], tables["int8"])
    case["networks"] = {"calibration": ratio_summary(*(measured_by_arch(tables[p]) for p in ("fp32", "int8")))}
    for precision, table in tables.items():
        start = time.perf_counter()
        result = validate(table, space, n=args.held_out, seed=args.seed, settings=check)
        figures = result.as_dict()
        figures["seconds"] = time.perf_counter() - start
        figures["goal_met"] = bool(
            result.within_5_pct >= GOAL["within_5_pct"] and result.within_10_pct >= GOAL["within_10_pct"]
        )
        case["validation"][precision] = figures
        print(
            f"[{backend} {precision}] {result.n} held-out networks: {result.within_5_pct:.0f}% within ±5%, "
            f"{result.within_10_pct:.0f}% within ±10%, MAPE {result.mape_pct:.2f}%",
            flush=True,
        )
    held_out = [dict(zip(v["archs"], v["measured_ms"])) for v in case["validation"].values()]
    case["networks"]["held_out"] = ratio_summary(*held_out)  # the same archs (same seed, same exclusions)
    return case


def markdown(cases: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| backend | op kind | stage | rows | FP32 ms | INT8 ms | speed-up | median row speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for r in case["ops"]:
            speedup = "—" if r["speedup"] is None else f"{r['speedup']:.2f}x"
            median = "—" if r["median_row_speedup"] is None else f"{r['median_row_speedup']:.2f}x"
            lines.append(
                f"| {case['backend']} | {r['kind']} | {r['stage']} | {r['rows']} | {r['fp32_ms']:.3f} | "
                f"{r['int8_ms']:.3f} | {speedup} | {median} |"
            )
        for which, n in case["networks"].items():
            if n["networks"]:
                lines.append(
                    f"| {case['backend']} | whole networks ({which}) | — | {n['networks']} | | | "
                    f"{n['median']:.2f}x (median; {n['min']:.2f}-{n['max']:.2f}) | |"
                )
    lines += [
        "",
        "| backend | table | held-out | within ±5% | within ±10% | MAPE | max | Kendall τ | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for precision, v in case["validation"].items():
            lines.append(
                f"| {case['backend']} | {precision} | {v['n']} | {v['within_5_pct']:.0f}% | "
                f"{v['within_10_pct']:.0f}% | {v['mape_pct']:.2f}% | {v['max_err_pct']:.1f}% | "
                f"{v['kendall_tau']:.3f} | "
                f"{'met' if v['goal_met'] else 'missed'} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="quadranet-t")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--held-out", type=int, default=20, help="held-out networks per table (default 20)")
    parser.add_argument("--clock", default="auto", help="the profiles' clock (default auto: cpu at 1 thread)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out networks")
    parser.add_argument("--quick", action="store_true", help="a smoke test: short schedules, 4 held-out networks")
    parser.add_argument(
        "--work", type=Path, default=None, help="the tables, resumed on a rerun (default runs/bench-int8[-quick])"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the JSON (default docs/figures/bench_int8.json; --quick: in --work)"
    )
    args = parser.parse_args(argv)
    args.work = args.work or Path("runs/bench-int8-quick" if args.quick else "runs/bench-int8")  # never mixed
    args.out = args.out or (args.work / "bench_int8.json" if args.quick else Path("docs/figures/bench_int8.json"))
    if args.quick:
        args.held_out = min(args.held_out, 4)
    space = SearchSpace.load(args.space)
    start = time.perf_counter()
    cases = [bench_backend(backend, space, args) for backend in args.backends]
    result = {
        "space": space.name,
        "host": Host.current().describe(),
        "goal": GOAL,
        "quick": args.quick,
        "seconds": time.perf_counter() - start,
        "cases": cases,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(markdown(cases)))
    print(f"wrote {args.out} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
