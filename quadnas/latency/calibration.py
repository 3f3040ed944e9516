"""Calibrating a measured table from a few whole networks: the fit, no measuring.

A measured table predicts a network as the sum of its rows; a whole network also pays what no
row holds (launches between ops, caches warm across them), so the profiler times a few whole
networks and fits `measured ≈ a·sum + b`. Its error is estimated by leave-one-out. `latency.adaptation`
is the richer fit that corrects another table's rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from quadnas.latency.header import Calibration
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace


def fit_calibration(row_sums: Iterable[float], measured: Iterable[float]) -> Calibration:
    """Least-squares `measured ≈ a·sum + b`; error from leave-one-out predictions (n >= 3)."""
    x, y = np.asarray(list(row_sums), float), np.asarray(list(measured), float)
    if len(x) == 0:
        return Calibration()
    a, b = _line(x, y)
    if len(x) < 3:
        return Calibration(a=a, b_ms=b, networks=len(x))
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        ai, bi = _line(x[keep], y[keep])
        errors.append(abs(ai * x[i] + bi - y[i]) / y[i] * 100)
    return Calibration(a=a, b_ms=b, mape_pct=float(np.mean(errors)), max_err_pct=float(np.max(errors)), networks=len(x))


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and offset; a plain ratio when the points cannot fix a positive slope and a non-negative
    offset (a negative one comes from noise, and would predict a small enough arch at 0 ms or less)."""
    if len(x) >= 2 and np.ptp(x) > 1e-9 * max(abs(x).max(), 1e-12):
        a, b = np.polyfit(x, y, 1)
        if a > 0 and b >= 0:
            return float(a), float(b)
    return float(y.sum() / x.sum()), 0.0


def calibrate(table: LatencyTable, space: SearchSpace) -> None:
    """Fit the table's calibration to the networks in its header (its rows must cover them)."""
    points = table.meta.networks()
    sums = [float(table.lookup(space.op_specs(space.parse(p.arch))).sum()) for p in points]
    calibration = fit_calibration(sums, [p.measured_ms for p in points])
    table.meta = table.meta.model_copy(update={"calibration": calibration})
