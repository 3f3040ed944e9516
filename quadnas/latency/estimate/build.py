"""Rebuilding the shipped estimated tables: fit each recipe's cost model, then write one row per op spec.

Reproducible on any host. The fit's last digits depend on the host's floating point (numpy's
SIMD log/exp, LAPACK inside scipy), and on myriad-x one fitted parameter, eff.vector, is not
pinned by the points at all (above ~0.019 every vector op of the reference networks is memory
bound, so the objective is flat; the optimiser stops wherever rounding noise leaves it, yet
GELU rows depend on it by up to 1.7%). So:

1. fitted parameters are rounded to SIGNIFICANT digits and every row is computed from the
   rounded ones (the header reproduces every number);
2. the existing table's fitted parameters are kept when the rest of its cost model is the
   recipe's and they fit the points as well as the fresh fit does: objectives within COST_RTOL
   (1e-6) relative. Simulated host noise (up to 16 ULPs on every residual, 1e-9 on the fitted
   parameters) moves the rounded fit's objective by < 1e-7; a 1% change of any one target
   moves it by >= 3.6e-5 (and shows in the header anyway), of any pinned fitted parameter by
   >= 1.1e-4 (all three tables). `refit` takes the fresh fit's rounding regardless (after
   changing the fit method or SIGNIFICANT);
3. a rebuilt table counts as unchanged when its text equals the file's except for numbers
   that differ by at most one unit in their last written digit (`differences.text_differences`).

`rebuild` does all three for every recipe and says which tables differ from the files on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from quadnas._version import __version__
from quadnas.errors import QuadnasError
from quadnas.latency.estimate.differences import text_differences
from quadnas.latency.estimate.model import DeviceModel, FitPoint, FitResult, fit
from quadnas.latency.estimate.points import POINTS_CSV, read_points
from quadnas.latency.estimate.recipes import RECIPES, Recipe
from quadnas.latency.header import Calibration, Estimate, FittedNetwork, TableMeta
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace

SIGNIFICANT = 4  # fitted parameters are rounded, so the header reproduces every row exactly
#: the existing fit is kept while its objective is within this (relative) of the fresh fit's (module docstring)
COST_RTOL = 1e-6


def _round(x: float) -> float:
    """`x` to SIGNIFICANT digits."""
    return float(f"{x:.{SIGNIFICANT}g}")


def _evaluate(device: DeviceModel, points: tuple[FitPoint, ...]) -> FitResult:
    """`device`'s predictions of `points`, as a fit result."""
    return FitResult(device, points, tuple(p.model_ms(device) for p in points))


def rounded_fit(recipe: Recipe, selected: list[FitPoint], existing: DeviceModel | None = None) -> FitResult:
    """Fit, then round the fitted parameters so the header reproduces every number.

    `existing` (the cost model of the table on disk) is returned instead where it is the same fit
    (`same_fit`): the fresh fit's last digits, and any parameter the points do not pin, vary by host.
    """
    result = fit(recipe.prior, selected, recipe.free, recipe.ties)
    values = {name: _round(result.device.get(name)) for name in recipe.free}
    fresh = _evaluate(recipe.prior.with_params(values, recipe.ties), result.points)
    if existing is not None and same_fit(recipe, existing, fresh):
        return _evaluate(existing, result.points)
    return fresh


def same_fit(recipe: Recipe, existing: DeviceModel, fresh: FitResult) -> bool:
    """Whether `existing` is what this recipe fits: the recipe's prior with rounded fitted parameters
    inside their bounds, fitting the points as well as `fresh` (objectives within COST_RTOL)."""
    try:
        values = {name: existing.get(name) for name in recipe.free}
    except (AttributeError, KeyError):
        return False
    if recipe.prior.with_params(values, recipe.ties).header() != existing.header():
        return False  # another prior, other ties, or other fixed parameters
    if any(v != _round(v) or not recipe.free[n][0] <= v <= recipe.free[n][1] for n, v in values.items()):
        return False
    kept = _evaluate(existing, fresh.points)
    return abs(kept.cost - fresh.cost) <= COST_RTOL * max(kept.cost, fresh.cost)


#: How the rows of QuadEnhanced blocks are estimated, and what is known of their error.
ENHANCER_ROWS = (
    "rows with enhance > 0 (QuadEnhanced 1x1 convs) are the fitted model's price of the enhancer's primitives "
    "(per neighbour a roll copy, a multiply and an add; then a multiply and the bias add, on each 1x1 conv's "
    "output); no published latency of a QuadEnhancer exists for this device, so their error here is unmeasured. "
    "docs/benchmarks.md compares the model's enhancer share of a block with one measured on an x86 host."
)


def build_table(recipe: Recipe, result: FitResult, space: SearchSpace, created: datetime) -> LatencyTable:
    """The estimated table of `recipe` fitted as `result`: its header, then one row per op spec of `space`."""
    residuals = result.residuals_pct
    sources = [
        f"{p.description}; weight {p.weight:g} -> model {m:.4g} ms ({r:+.1f}%)"
        for p, m, r in zip(result.points, result.predicted_ms, residuals)
    ]
    fit_points = [
        FittedNetwork(
            network=p.network,
            resolution=p.resolution,
            target_ms=round(p.target_ms, 6),
            weight=p.weight,
            model_ms=_round(m),
            residual_pct=round(float(r), 2),
            device_override=p.device_override or {},
        )
        for p, m, r in zip(result.points, result.predicted_ms, residuals)
    ]
    # header keys beyond TableMeta's fields, in the order they are written
    extra_keys: dict[str, Any] = {**({"enhancer_rows": ENHANCER_ROWS} if space.enhances else {}), **recipe.extra}
    meta = TableMeta(
        device=recipe.name,
        aliases=recipe.aliases,
        backend=recipe.backend,
        backend_version=recipe.backend_version,
        precision=recipe.precision,
        batch=1,
        threads=recipe.threads,
        resolution=space.config.resolution,
        space=space.name,
        space_fingerprint=space.fingerprint(),
        created=created,
        quadnas_version=__version__,
        provenance="estimated",
        method=recipe.method,
        calibration=Calibration(
            a=1.0,
            b_ms=0.0,
            networks=len(result.points),
            **(
                {"mape_pct": round(result.mape_pct, 2), "max_err_pct": round(result.max_err_pct, 2)}
                if recipe.states_fit_error
                else {}
            ),
        ),
        sources=sources,
        estimate=Estimate(cost_model=result.device.header(), fit_points=fit_points),
        **extra_keys,
    )
    table = LatencyTable(meta)
    stem_patch = space.config.stem_patch
    rows = []
    for spec in space.all_op_specs():
        ms = result.device.spec_ms(spec, stem_patch)
        rows.append({**spec.as_row(), "latency_ms": ms, "p10_ms": ms, "p90_ms": ms, "runs": 0})
    return table.with_rows(rows)


def existing_created(path: Path) -> datetime | None:
    """The `created` date of the table at `path`, if it has a readable header."""
    try:
        return LatencyTable.read_meta(path).created
    except QuadnasError:
        return None


def existing_fit(path: Path) -> DeviceModel | None:
    """The cost model in the header of the table at `path`, if it has a readable one."""
    try:
        estimate = LatencyTable.read_meta(path).estimate
        return estimate.device_model() if estimate is not None else None
    except (QuadnasError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


@dataclass(frozen=True)
class Rebuilt:
    """One recipe rebuilt: its fit, its table, where the table goes, and how it differs from the file there."""

    recipe: Recipe
    fit: FitResult
    table: LatencyTable
    path: Path
    differences: list[str]  # empty: the file holds this table (up to host floating-point noise)


def rebuild(
    space: SearchSpace,
    out: Path,
    points: Path = POINTS_CSV,
    created: datetime | None = None,
    refit: bool = False,
) -> list[Rebuilt]:
    """Every recipe fitted to `points` and built for `space`'s op specs as `out/NAME.csv`; nothing is written.

    `created` defaults to the existing file's date, else now; `refit` ignores the existing files' fits.
    """
    reference = read_points(points)
    rebuilt = []
    for recipe in RECIPES:
        path = out / f"{recipe.name}.csv"
        when = created or existing_created(path) or datetime.now(timezone.utc).replace(microsecond=0)
        result = rounded_fit(recipe, recipe.select(reference), None if refit else existing_fit(path))
        table = build_table(recipe, result, space, when)
        old, new = (path.read_text() if path.exists() else None), table.to_text()
        differences = [] if old == new else ["a new file"] if old is None else text_differences(old, new)
        rebuilt.append(Rebuilt(recipe, result, table, path, differences))
    return rebuilt
