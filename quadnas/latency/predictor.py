"""Latency prediction: the calibrated sum of an arch's table rows.

The sum is additive over blocks, so the predictor precomputes a
(num_blocks x num_choices) latency matrix plus the fixed cost of stem, downsamples
and head; prediction of many archs is one gather and one sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from quadnas.errors import QuadnasError
from quadnas.latency.header import Calibration
from quadnas.latency.precision import check_same_precision
from quadnas.latency.table import LatencyTable
from quadnas.space import Arch, SearchSpace


class LatencyPredictor:
    """Predicts the latency (ms) of archs of `space` on the device `table` describes.

    `precision`: that of the files the predictions are for (an export's); one that mixes INT8
    with the table's float (or the reverse) is an error (`precision.check_same_precision`).
    """

    def __init__(self, table: LatencyTable, space: SearchSpace, precision: str | None = None):
        if precision is not None:
            check_same_precision(table.name, table.meta.precision, precision)
        resolution = space.config.resolution
        if table.meta.resolution != resolution:
            raise QuadnasError(
                f"table {table.name} is for resolution {table.meta.resolution} but space '{space.name}' "
                f"deploys at {resolution}: use a space of resolution {table.meta.resolution}. "
                f"{table.rows_hint(space.source)}"
            )
        table.check_covers(space.all_op_specs(), space=space.source)
        self.table, self.space = table, space
        # keyed by (kernel, expansion): hashing a plain tuple is faster than a dataclass
        self.matrix = np.zeros((space.num_blocks, len(space.choices)))
        for j, choice in enumerate(space.choices):
            if not choice.is_identity:
                specs = [s for s in space.op_specs(Arch((choice,) * space.num_blocks)) if s.op == "quadra_block"]
                self.matrix[:, j] = table.lookup(specs)
        self._flat_matrix = self.matrix.ravel()
        self._row_offsets = np.arange(space.num_blocks) * len(space.choices)
        fixed_specs = [s for s in space.op_specs(space.largest()) if s.op != "quadra_block"]
        self.fixed_ms = float(table.lookup(fixed_specs).sum())

    @property
    def calibration(self) -> Calibration:
        return self.table.meta.calibration

    # ---- prediction --------------------------------------------------------
    def indices(self, archs: Sequence[Arch] | np.ndarray) -> np.ndarray:
        """Choice indices (n, num_blocks) into `space.choices` of a list of archs or an index array."""
        if isinstance(archs, np.ndarray):
            idx = archs.astype(np.intp, copy=False)
            if idx.ndim != 2 or idx.shape[1] != self.space.num_blocks:
                raise ValueError(f"index array must have shape (n, {self.space.num_blocks}), got {idx.shape}")
            if idx.size and (idx.min() < 0 or idx.max() >= len(self.space.choices)):
                raise ValueError(f"choice indices must lie in [0, {len(self.space.choices)})")
            return idx
        return self.space.to_indices(archs)

    def raw_many(self, archs: Sequence[Arch] | np.ndarray) -> np.ndarray:
        """Uncalibrated sums of table rows (ms)."""
        idx = self.indices(archs)
        blocks_ms: np.ndarray = self._flat_matrix[idx + self._row_offsets].sum(axis=1)
        return self.fixed_ms + blocks_ms

    def predict_many(self, archs: Sequence[Arch] | np.ndarray) -> np.ndarray:
        """Calibrated latencies (ms) of many archs."""
        return np.asarray(self.calibration.apply(self.raw_many(archs)), dtype=float)

    def raw_sum(self, arch: Arch) -> float:
        """Uncalibrated sum of the arch's table rows (ms)."""
        return float(self.raw_many([arch])[0])

    def predict(self, arch: Arch) -> float:
        """Calibrated latency (ms)."""
        return float(self.predict_many([arch])[0])

    def breakdown(self, arch: Arch) -> pd.DataFrame:
        """One row per op spec the arch runs (columns op, ms, share), calibration applied.

        Rows carry the calibration scale; a non-zero calibration offset is its own row,
        so the `ms` column sums to `predict(arch)`.
        """
        specs = self.space.op_specs(arch)
        ms = self.calibration.a * self.table.lookup(specs)
        ops = [str(s) for s in specs]
        if self.calibration.b_ms:
            ops.append("calibration offset")
            ms = np.append(ms, self.calibration.b_ms)
        total = ms.sum()
        return pd.DataFrame({"op": ops, "ms": ms, "share": ms / total if total else 0.0})

    # ---- extremes ----------------------------------------------------------
    def fastest(self) -> tuple[Arch, float]:
        """The exact fastest arch: per-block minimum (sum is additive, calibration monotone)."""
        return self._extreme(self.matrix.argmin(axis=1))

    def slowest(self) -> tuple[Arch, float]:
        """The exact slowest arch: per-block maximum."""
        return self._extreme(self.matrix.argmax(axis=1))

    def _extreme(self, choice_per_block: np.ndarray) -> tuple[Arch, float]:
        arch = self.space.from_indices(choice_per_block)
        return arch, self.predict(arch)
