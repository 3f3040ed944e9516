"""Three CPU runtimes timing the same QuadraNets side by side: LiteRT (XNNPACK), onnxruntime and torch eager.

The archs are the held-out ones `quadnas validate --table amd-epyc-litert-1t --n N` times (seed 1, spread from
small to large, none of the table's calibration networks). Every (runtime, arch) pair is one model, prepared
as the profiler prepares networks (`Backend.prepare`: LiteRT and onnxruntime files written by quadnas, torch
eager on channels-last input), and all are timed in one interleaved schedule (`measure_interleaved`), so the
three runtimes share the machine's conditions. 1 thread each, the cpu clock (`auto`), 224 px, batch 1.

    python scripts/bench_runtimes.py --n 6 --out runs/litert-figures/runtimes.json

Needs the litert extra. Writes one JSON: per arch and runtime the median, p10 and p90 in ms; per runtime the
geometric mean of its median over LiteRT's; the load average before and after; the host and versions.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.latency.host import Host
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.measure.builders import network_input_shape
from quadnas.latency.table import LatencyTable
from quadnas.nn import QuadraNet
from quadnas.portable.timing import Schedule, TimedSession, Timing, measure_interleaved
from quadnas.space import Arch, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ("litert", "onnxruntime", "torch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", default=str(ROOT / "latency_tables" / "amd-epyc-litert-1t.csv"))
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    load_before = os.getloadavg()
    table = LatencyTable.read(Path(args.table))
    space = SearchSpace.load(table.meta.space)
    calibration = [space.parse(p.arch) for p in table.meta.networks()]
    archs = space.spread(args.n, args.seed, exclude=calibration)
    backends = {name: get_backend(name, None, 1, clock="auto") for name in RUNTIMES}
    shape = network_input_shape(space)
    by_key = {f"{name}|{arch}": (name, arch) for name in RUNTIMES for arch in archs}

    def open_session(key: str) -> TimedSession:
        name, arch = by_key[key]
        return backends[name].prepare(QuadraNet(space, arch).eval(), shape, channels_last=False)

    timings: dict[str, Timing] = {}
    context = {
        "space": space.name,
        "resolution": space.config.resolution,
        "archs_from": f"{table.name}: validate's held-out archs (seed {args.seed}, n {args.n})",
        "runtimes": {name: {**backends[name].describe()} for name in RUNTIMES},
        "host": Host.current().describe(),
        "loadavg_before": load_before,
    }

    def done(key: str, timing: Timing) -> None:
        timings[key] = timing
        print(f"[{len(timings)}/{len(by_key)}] {key}: {timing.median_ms:.3f} ms", flush=True)
        write(args.out, summary(context, archs, timings))  # after every model: an interrupted run keeps what it timed

    schedule = Schedule(rounds=args.rounds, round_s=0.03, window=6, warmup_s=0.05)
    measure_interleaved(list(by_key), open_session, schedule, done, seed=0)
    result = summary(context, archs, timings)
    print(json.dumps({k: result[k] for k in ("geomean_over_litert", "median_of_medians_ms")}, indent=1))


def write(out: Path, result: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)


def summary(context: dict[str, Any], archs: list[Arch], timings: dict[str, Timing]) -> dict[str, Any]:
    """The JSON document: every arch timed on all three runtimes so far, and the ratios over them."""
    archs = [a for a in archs if all(f"{name}|{a}" in timings for name in RUNTIMES)]
    rows = [
        {
            "arch": str(arch),
            **{
                name: {
                    "median_ms": round(timings[f"{name}|{arch}"].median_ms, 4),
                    "p10_ms": round(timings[f"{name}|{arch}"].p10_ms, 4),
                    "p90_ms": round(timings[f"{name}|{arch}"].p90_ms, 4),
                }
                for name in RUNTIMES
            },
        }
        for arch in archs
    ]
    litert = np.array([timings[f"litert|{a}"].median_ms for a in archs])
    ratios = {
        name: float(np.exp(np.mean(np.log(np.array([timings[f"{name}|{a}"].median_ms for a in archs]) / litert))))
        for name in RUNTIMES
    }
    return {
        "what": "median per call of the same archs on three runtimes, interleaved in one run, 1 thread, batch 1",
        **context,
        "complete_archs": len(archs),
        "models_timed": len(timings),
        "geomean_over_litert": ratios if archs else None,
        "median_of_medians_ms": {
            name: float(np.median([timings[f"{name}|{a}"].median_ms for a in archs])) for name in RUNTIMES
        }
        if archs
        else None,
        "archs": rows,
        "loadavg_now": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
