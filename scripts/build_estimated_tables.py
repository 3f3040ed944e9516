"""Rebuild the shipped ESTIMATED latency tables: cortex-a76 (cpu), myriad-x (vpu), a100 (gpu).

Fits the operator cost model of each device (its recipe: quadnas/latency/estimate/recipes.py) to
published whole-network latencies (latency_tables/reference/published_latency_points.csv), then
writes one row per op spec of quadranet-t-qe, which has every op spec of the default space and
the QuadEnhanced blocks besides (`created` is kept from the existing file unless --created is
given). quadnas/latency/estimate/build.py says how a rebuild stays reproducible across hosts.
Prints a report per table: the fit, its error, the range of the space and the budget's place in it.

    .venv/bin/python scripts/build_estimated_tables.py            # write the tables, print the report
    .venv/bin/python scripts/build_estimated_tables.py --check    # exit 1 if a table would change
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.latency.estimate.build import build_table, rebuild, rounded_fit
from quadnas.latency.estimate.model import DeviceModel, FitResult, Prim, decompose
from quadnas.latency.estimate.points import (
    EAGER_OVER_TENSORRT,
    POINTS_CSV,
    read_points,
    select_a100,
    stock_over_prediction,
)
from quadnas.latency.estimate.recipes import A100_TF32_OFF, Recipe
from quadnas.latency.estimate.reference_models import NETWORKS
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import Arch, SearchSpace

BUDGETS_MS = {"cortex-a76": 300.0, "myriad-x": 30.0, "a100": 3.0}
#: per-block MBConv latency ratios k5/k3, k7/k3 (Note10 CPU, TFLite) and the
#: MobileNetV2 width assumed at each resolution (expansion 6, stride 1)
DEPTHWISE_FACTS = {56: (24, 1.55, 2.37), 28: (32, 1.35, 1.84), 14: (96, 1.17, 1.40), 7: (160, 1.07, 1.16)}


def mbconv(size: int, width: int, kernel: int, expansion: int = 6) -> list[Prim]:
    hidden = width * expansion
    return [
        Prim("conv", size, size, width, hidden),
        Prim("conv", size, size, hidden, hidden, kernel, 1, groups=hidden),
        Prim("conv", size, size, hidden, width),
        Prim("add", size, size, width, width),
    ]


def depthwise_check(device: DeviceModel) -> list[dict]:
    rows = []
    for size, (width, k5, k7) in DEPTHWISE_FACTS.items():
        base = device.prims_ms(mbconv(size, width, 3))
        rows.append(
            {
                "size": size,
                "width": width,
                "k5/k3 model": device.prims_ms(mbconv(size, width, 5)) / base,
                "k5/k3 measured": k5,
                "k7/k3 model": device.prims_ms(mbconv(size, width, 7)) / base,
                "k7/k3 measured": k7,
            }
        )
    return rows


def report(recipe: Recipe, result: FitResult, table: LatencyTable, space: SearchSpace, points: pd.DataFrame) -> str:
    lines = [
        f"### {recipe.name} ({', '.join(recipe.aliases)})",
        "",
        "| network | input | target ms | weight | model ms | residual |",
        "|---|---|---|---|---|---|",
    ]
    for p, m, r in zip(result.points, result.predicted_ms, result.residuals_pct):
        lines.append(f"| {p.network} | {p.resolution} | {p.target_ms:.4g} | {p.weight:g} | {m:.4g} | {r:+.1f}% |")
    measured = [abs(r) for p, r in zip(result.points, result.residuals_pct) if p.weight == 1.0]
    lines += [
        "",
        f"fit error: mean |residual| {result.mape_pct:.1f}%, max {result.max_err_pct:.1f}% "
        f"(weight-1 points: mean {np.mean(measured):.1f}%, max {np.max(measured):.1f}%)",
        "",
        "fitted parameters: " + ", ".join(f"{n} = {result.device.get(n):g}" for n in recipe.free),
    ]
    if not recipe.states_fit_error:
        lines += ["", "the calibration states no expected error: this fit error measures nothing (see method)"]
    if recipe.name == "cortex-a76":
        lines += [
            "",
            "depthwise scaling check (MBConv block, expansion 6, stride 1):",
            "",
            "| size | width | k5/k3 model | measured | k7/k3 model | measured |",
            "|---|---|---|---|---|---|",
        ]
        for r in depthwise_check(result.device):
            lines.append(
                f"| {r['size']} | {r['width']} | {r['k5/k3 model']:.2f} | {r['k5/k3 measured']:.2f} | "
                f"{r['k7/k3 model']:.2f} | {r['k7/k3 measured']:.2f} |"
            )
    lines += [
        "",
        "quadra_block k5/k3, k7/k3 (e=4) per stage: "
        + "; ".join(
            f"{s.height}x{s.width}x{s.cin}: {ratio(table, s, 5):.2f}, {ratio(table, s, 7):.2f}"
            for s in space.all_op_specs()
            if s.op == "quadra_block" and s.kernel == 3 and s.expansion == 4
        ),
    ]
    predictor = LatencyPredictor(table, space)
    fast, fast_ms = predictor.fastest()
    slow, slow_ms = predictor.slowest()
    budget = BUDGETS_MS[recipe.name]
    inside = fast_ms < budget < slow_ms
    random_ms = predictor.predict_many(
        np.random.default_rng(0).integers(0, len(space.choices), (2000, space.num_blocks))
    )
    lines += [
        "",
        f"range on {space.name}: fastest {fast_ms:.4g} ms ({fast}), slowest {slow_ms:.4g} ms ({slow}); "
        f"budget {budget:g} ms = {100 * budget / slow_ms:.0f}% of slowest, "
        f"{'inside' if inside else 'OUTSIDE'} the range",
        "",
        f"2000 uniformly random archs: median {np.median(random_ms):.4g} ms "
        f"(10-90%: {np.percentile(random_ms, 10):.4g}-{np.percentile(random_ms, 90):.4g} ms); "
        f"{100 * np.mean(random_ms <= budget):.0f}% within the budget; an arch within it has at most "
        f"{most_blocks_within(predictor, budget)} of {space.num_blocks} blocks non-identity",
        "",
    ]
    if recipe.prior.eager:
        lines += eager_report(recipe, result, space, points)
    return "\n".join(lines)


def most_blocks_within(predictor: LatencyPredictor, budget_ms: float) -> int:
    """The most non-identity blocks an arch can have and still meet the budget (cheapest choices)."""
    real = [j for j, c in enumerate(predictor.space.choices) if not c.is_identity]
    cheapest = np.sort(predictor.matrix[:, real].min(axis=1))
    totals = predictor.calibration.apply(predictor.fixed_ms + np.concatenate([[0.0], np.cumsum(cheapest)]))
    return int(np.sum(totals <= budget_ms)) - 1


def kernels(device: DeviceModel, space: SearchSpace, arch: Arch) -> int:
    """Kernels an arch launches (unfused primitives)."""
    return sum(
        p.kind not in device.fused
        for s in space.op_specs(arch)
        for p in decompose(s, space.config.stem_patch, device.eager)
    )


def eager_report(recipe: Recipe, result: FitResult, space: SearchSpace, points: pd.DataFrame) -> list[str]:
    """Kernel counts, and how the range and the budget's place in it move with the a100 assumptions (refitted)."""
    device, budget = result.device, BUDGETS_MS[recipe.name]
    block = next(s for s in space.all_op_specs() if s.op == "quadra_block")
    lines = [
        f"kernels launched: ResNet-50-eager {len(NETWORKS['ResNet-50-eager']())}; a QuadraBlock "
        f"{len(decompose(block, eager=True))}; {space.name} fastest {kernels(device, space, space.smallest())}, "
        f"slowest {kernels(device, space, space.largest())}",
        "",
        "sensitivity (each row refitted to its own targets):",
        "",
        "| assumption | overhead_us | fastest ms | slowest ms | budget share of slowest |",
        "|---|---|---|---|---|",
    ]
    variants = [(f"eager/TensorRT ratio {r:g}x", recipe, r) for r in (5, 7, EAGER_OVER_TENSORRT, 14, 20)]
    variants.append(
        (
            f"ratio {EAGER_OVER_TENSORRT:g}x, TF32 off (convs on FP32 CUDA cores)",
            replace(recipe, prior=recipe.prior.with_params(A100_TF32_OFF)),
            EAGER_OVER_TENSORRT,
        )
    )
    created = datetime(2000, 1, 1, tzinfo=timezone.utc)
    for label, variant, r in variants:
        fitted = rounded_fit(variant, select_a100(points, r))
        predictor = LatencyPredictor(build_table(variant, fitted, space, created), space)
        fast_ms, slow_ms = predictor.fastest()[1], predictor.slowest()[1]
        lines.append(
            f"| {label} | {fitted.device.overhead_us:g} | {fast_ms:.4g} | {slow_ms:.4g} | "
            f"{100 * budget / slow_ms:.0f}%{'' if fast_ms < budget < slow_ms else ' (OUTSIDE)'} |"
        )
    return lines + [""]


def ratio(table: LatencyTable, spec, kernel: int) -> float:
    """Latency of `spec` with another kernel, relative to `spec`."""
    return float(table.lookup([replace(spec, kernel=kernel)])[0] / table.lookup([spec])[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=Path, default=POINTS_CSV, help="published latency points (CSV)")
    parser.add_argument("--out", type=Path, default=SHIPPED_TABLES_DIR, help="where the tables go")
    parser.add_argument(
        "--space",
        default=None,
        help="search space whose op specs get rows (default quadranet-t-qe, a superset of quadranet-t)",
    )
    parser.add_argument(
        "--created",
        type=datetime.fromisoformat,
        default=None,
        help="ISO date-time for the header (default: keep the existing file's, else now)",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a table would change")
    parser.add_argument(
        "--refit",
        action="store_true",
        help="take the fresh fit's rounded parameters even where the existing table's fit as well",
    )
    args = parser.parse_args(argv)

    points = read_points(args.points)
    space = SearchSpace.load(args.space or "quadranet-t-qe")
    stock_ratio, ratios = stock_over_prediction(points)
    print(
        f"A76 stock-TFLite / nn-Meter-prediction ratios: {', '.join(f'{r:.3f}' for r in ratios)}; "
        f"geometric mean {stock_ratio:.3f}\n"
    )
    changed = []
    for r in rebuild(space, args.out, args.points, args.created, args.refit):
        print(report(r.recipe, r.fit, r.table, space, points))
        if r.differences:
            changed.append(r.path)
            if args.check:
                shown = r.differences[:5] + [f"... {len(r.differences) - 5} more"] * (len(r.differences) > 5)
                print(f"{r.path}:\n  " + "\n  ".join(shown), file=sys.stderr)
            else:
                r.table.write(r.path)
    if args.check and changed:
        print(f"would change: {', '.join(map(str, changed))}", file=sys.stderr)
        return 1
    print("changed: " + (", ".join(map(str, changed)) if changed else "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
