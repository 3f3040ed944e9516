"""Adapting a latency table to another device from a few whole-network latencies (no measuring here).

Every row of the source is corrected by a global log-scale, a log-scale per group (stem, downsample,
head, each block stage) and, for blocks, additive shifts for kernel, expansion and enhancer within the
stage; a network is `offset + sum of its adapted rows`. The fit is ridge-penalised relative least squares
with a leave-one-out error (docs/tables.md, "The model", gives the formula and why). `latency.calibration`
is the simpler fit a measured table gets from its own networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from quadnas.errors import QuadnasError
from quadnas.latency.header import AdaptationFit
from quadnas.latency.table import LatencyTable
from quadnas.space import Arch, OpSpec, SearchSpace

MIN_NETWORKS = 3  # leave-one-out needs at least two networks to fit on
SCALE_STRENGTH = 0.01  # ridge on a kind's or a stage's log factor
SHIFT_STRENGTH = 0.01  # ridge on a kernel's, expansion's or enhancer's shift (in typical blocks of its stage)


def group(spec: OpSpec) -> str:
    """The term that scales `spec`'s row: its op kind, or for a block its stage (input shape)."""
    if spec.op != "quadra_block":
        return spec.op
    return f"quadra_block {spec.height}x{spec.width}x{spec.cin}"


def shifts(spec: OpSpec) -> list[str]:
    """The terms that shift `spec`'s row: a block's kernel, expansion and enhancer within its stage."""
    if spec.op != "quadra_block":
        return []
    stage = group(spec)
    return [f"{stage} k={spec.kernel}", f"{stage} e={spec.expansion}", f"{stage} q={spec.enhance}"]


class Adaptation(AdaptationFit):
    """A fitted correction of a table (see the module's docstring), and its leave-one-out error; `factors`
    are exp(d) per group, `shifts` a per shift term, in units of the group's `typical_ms` source row."""

    fit_mape_pct: float
    loo_mape_pct: float
    loo_max_err_pct: float

    def row_ms(self, spec: OpSpec, source_ms: float) -> float:
        """`spec`'s adapted row from its source row (never below 0)."""
        g = group(spec)
        shifted = source_ms + self.typical_ms.get(g, 0.0) * sum(self.shifts.get(t, 0.0) for t in shifts(spec))
        return max(self.global_scale * self.factors.get(g, 1.0) * shifted, 0.0)

    def header(self) -> AdaptationFit:
        """The fit as a table header holds it (rounded): everything needed to recompute the rows."""
        return AdaptationFit(
            global_scale=round(self.global_scale, 6),
            offset_ms=round(self.offset_ms, 6),
            factors={t: round(f, 5) for t, f in self.factors.items()},
            shifts={t: round(a, 5) for t, a in self.shifts.items()},
            typical_ms={t: round(m, 6) for t, m in self.typical_ms.items()},
            strength=self.strength,
            fit_mape_pct=round(self.fit_mape_pct, 3),
            loo_mape_pct=round(self.loo_mape_pct, 3),
            loo_max_err_pct=round(self.loo_max_err_pct, 3),
            loo_errors_pct=self.loo_errors_pct,
            networks=self.networks,
        )


@dataclass(frozen=True)
class _Design:
    """The regression over one space's op specs; parameters x = [g, offset, d per group, a per shift]."""

    counts: np.ndarray  # (networks, specs): how often each spec runs in each network
    rows: np.ndarray  # (specs,): source rows
    typical: np.ndarray  # (specs,): the typical row of each spec's group
    groups: np.ndarray  # (specs, groups) incidence
    shifts: np.ndarray  # (specs, shift terms) incidence
    group_names: list[str]
    shift_names: list[str]

    @classmethod
    def of(cls, source: LatencyTable, space: SearchSpace, archs: Sequence[Arch]) -> _Design:
        specs = space.all_op_specs()
        column = {s: j for j, s in enumerate(specs)}
        counts = np.zeros((len(archs), len(specs)))
        for i, arch in enumerate(archs):
            for spec in space.op_specs(arch):
                counts[i, column[spec]] += 1
        typical = typical_rows(source)
        group_names = list(dict.fromkeys(group(s) for s in specs))
        shift_names = list(dict.fromkeys(t for s in specs for t in shifts(s)))
        groups = np.array([[group(s) == g for g in group_names] for s in specs], dtype=float)
        shift_incidence = np.array([[t in shifts(s) for t in shift_names] for s in specs], dtype=float)
        return cls(
            counts,
            source.lookup(specs),
            np.array([typical[group(s)] for s in specs]),
            groups,
            shift_incidence.reshape(len(specs), len(shift_names)),
            group_names,
            shift_names,
        )

    @property
    def size(self) -> int:
        return 2 + len(self.group_names) + len(self.shift_names)

    @property
    def ridge(self) -> np.ndarray:
        strengths = [SCALE_STRENGTH] * len(self.group_names) + [SHIFT_STRENGTH] * len(self.shift_names)
        return np.sqrt(strengths)

    def _parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each spec's factor and adapted row at x."""
        d, a = x[2 : 2 + len(self.group_names)], x[2 + len(self.group_names) :]
        factor = np.exp(x[0] + self.groups @ d)
        return factor, factor * (self.rows + self.typical * (self.shifts @ a))

    def predict(self, x: np.ndarray, networks: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Predicted ms of `networks` at x."""
        predicted: np.ndarray = x[1] + self.counts[networks] @ self._parts(x)[1]
        return predicted

    def solve(self, measured: np.ndarray, networks: np.ndarray) -> np.ndarray:
        """The parameters fitted to the measured ms of `networks` (indices into the design)."""
        counts, y, ridge = self.counts[networks], measured[networks], self.ridge

        def residuals(x: np.ndarray) -> np.ndarray:
            return np.concatenate([(x[1] + counts @ self._parts(x)[1] - y) / y, ridge * x[2:]])

        def jacobian(x: np.ndarray) -> np.ndarray:
            factor, adapted = self._parts(x)
            data = np.column_stack(
                [
                    counts @ adapted,
                    np.ones(len(y)),
                    counts @ (adapted[:, None] * self.groups),
                    counts @ ((factor * self.typical)[:, None] * self.shifts),
                ]
            )
            penalty = np.column_stack([np.zeros((len(ridge), 2)), np.diag(ridge)])
            return np.vstack([data / y[:, None], penalty])

        start = np.zeros(self.size)
        start[0] = np.log(np.median(y / (counts @ self.rows)))
        lower = np.full(self.size, -np.inf)
        lower[1] = 0.0  # the offset: per-call costs, never negative
        fit = least_squares(residuals, start, jac=jacobian, bounds=(lower, np.inf), x_scale="jac")
        x: np.ndarray = fit.x
        return x


def typical_rows(source: LatencyTable) -> dict[str, float]:
    """The mean source row of each group (the unit of the group's shifts)."""
    by_group: dict[str, list[float]] = {}
    for spec, ms in zip(source.specs(), source.rows["latency_ms"].tolist()):
        by_group.setdefault(group(spec), []).append(float(ms))
    return {g: float(np.mean(v)) for g, v in by_group.items()}


def fit_adaptation(
    source: LatencyTable, space: SearchSpace, archs: Sequence[Arch], measured_ms: Sequence[float]
) -> Adaptation:
    """Fit the correction of `source` that predicts `measured_ms` of `archs` (networks of `space`)."""
    if len(archs) != len(measured_ms):
        raise ValueError("one measured latency per arch")
    if len(archs) < MIN_NETWORKS:
        raise QuadnasError(
            f"adaptation needs at least {MIN_NETWORKS} whole networks, got {len(archs)}: e.g. --networks 10"
        )
    y = np.asarray(measured_ms, dtype=float)
    design = _Design.of(source, space, archs)
    everyone = np.arange(len(y))
    x = design.solve(y, everyone)
    loo = []
    for i in everyone:
        xi = design.solve(y, everyone[everyone != i])
        loo.append(abs(float(design.predict(xi, np.array([i]))[0]) - y[i]) / y[i] * 100)
    fitted = np.abs(design.predict(x) - y) / y * 100
    n_groups = len(design.group_names)
    return Adaptation(
        global_scale=float(np.exp(x[0])),
        offset_ms=float(x[1]),
        factors={t: float(f) for t, f in zip(design.group_names, np.exp(x[2 : 2 + n_groups]))},
        shifts={t: float(a) for t, a in zip(design.shift_names, x[2 + n_groups :])},
        typical_ms=typical_rows(source),
        strength={"scale": SCALE_STRENGTH, "shift": SHIFT_STRENGTH},
        loo_mape_pct=float(np.mean(loo)),
        loo_max_err_pct=float(np.max(loo)),
        fit_mape_pct=float(fitted.mean()),
        networks=len(y),
        loo_errors_pct=[round(e, 3) for e in loo],
    )


def adapted_rows(source: LatencyTable, adaptation: Adaptation) -> list[dict[str, Any]]:
    """Every row of `source`, adapted; p10/p90 scale with the median; `runs` kept (nothing re-timed)."""
    rows = []
    for raw in source.rows.to_dict("records"):
        record = {str(k): v for k, v in raw.items()}
        spec = OpSpec(**{c: record[c] for c in OpSpec.COLUMNS})
        median = float(record["latency_ms"])
        adapted = adaptation.row_ms(spec, median)
        ratio = adapted / median if median > 0 else 0.0
        spread: dict[str, float] = {"p10_ms": record["p10_ms"] * ratio, "p90_ms": record["p90_ms"] * ratio}
        rows.append({**record, "latency_ms": adapted, **spread})
    return rows
