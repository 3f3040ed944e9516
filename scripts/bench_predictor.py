"""Lookup-table predictor vs a FLOPs-proportional predictor, on whole networks measured here.

For every measured table given: `quadnas validate` measures random archs end to end on
the table's backend; the LUT prediction is the table's calibrated sum; the FLOPs
baseline is `measured ≈ c · MACs + d`, least squares on the same calibration networks
the table's own calibration used. Writes JSON and a PNG (predicted vs measured).

    python scripts/bench_predictor.py --tables this-cpu-ort this-cpu-ov [--n 20] [--clock wall]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from quadnas.latency.devices import load_device_table  # noqa: E402
from quadnas.latency.measure._validate import compare, table_space, validate  # noqa: E402
from quadnas.nn import QuadraNet  # noqa: E402
from quadnas.nn.stats import model_stats  # noqa: E402
from quadnas.space import SearchSpace  # noqa: E402


def macs(space: SearchSpace, arch_text: str) -> int:
    res = space.config.resolution
    return model_stats(QuadraNet(space, space.parse(arch_text)), (1, space.config.in_channels, res, res))[1]


def bench_table(name: str, n: int, clock: str | None) -> dict:
    table = load_device_table(name)
    space = table_space(table)
    result = validate(table, n=n, clock=clock)
    calib = table.meta.networks()
    fit_x = np.array([macs(space, p.arch) for p in calib], dtype=float)
    fit_y = np.array([p.measured_ms for p in calib])
    c, d = np.polyfit(fit_x, fit_y, 1)
    test_macs = np.array([macs(space, a) for a in result.archs], dtype=float)
    measured, lut = np.array(result.measured_ms), np.array(result.predicted_ms)
    flops = c * test_macs + d
    return {
        "table": name,
        "backend": table.meta.backend,
        "device": table.meta.device,
        "clock": result.clock,
        "n": len(measured),
        "calibration_networks": len(calib),
        "lut": compare(measured, lut),
        "flops": compare(measured, flops),
        "flops_fit": {"ms_per_gmac": c * 1e9, "intercept_ms": d},
        "archs": result.archs,
        "measured_ms": measured.tolist(),
        "lut_ms": lut.tolist(),
        "flops_ms": flops.tolist(),
    }


def plot(results: list[dict], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.5), dpi=120, squeeze=False)
    for ax, r in zip(axes[0], results):
        m = np.array(r["measured_ms"])
        for key, colour in (("lut", "tab:blue"), ("flops", "tab:orange")):
            s = r[key]
            ax.scatter(
                m,
                r[f"{key}_ms"],
                s=16,
                c=colour,
                label=f"{key.upper()}: MAPE {s['mape_pct']:.1f}%, ±10% {s['within_10_pct']:.0f}%, "
                f"τ {s['kendall_tau']:.2f}",
            )
        lim = [0, max(m.max(), max(r["lut_ms"]), max(r["flops_ms"])) * 1.05]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set(
            xlim=lim, ylim=lim, xlabel="measured (ms)", ylabel="predicted (ms)", title=f"{r['table']} ({r['backend']})"
        )
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", required=True, help="names or paths of measured tables")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--clock", choices=["wall", "cpu"], help="default: each table's own clock")
    parser.add_argument("--out", default="docs/figures/bench_predictor.json")
    parser.add_argument("--png", default="docs/figures/bench_predictor.png")
    args = parser.parse_args()
    results = [bench_table(name, args.n, args.clock) for name in args.tables]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    plot(results, Path(args.png))
    for r in results:
        print(r["table"], "LUT", json.dumps(r["lut"]), "FLOPs", json.dumps(r["flops"]))


if __name__ == "__main__":
    main()
