"""Check a measured or adapted table against whole networks measured end to end.

Random archs of the table's space (spread from small to large, none of the
calibration or adaptation networks) are measured on the table's own backend, target, threads and
clock with the profiler's network code, and compared with the calibrated prediction.
The networks are timed on this host: against a table measured on another host the
result says so (`host_note`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from quadnas.errors import QuadnasError
from quadnas.latency.host import foreign_host_note
from quadnas.latency.measure.backends import BACKENDS, Backend, get_backend, keeps_torch_threads
from quadnas.latency.measure.kit_runner import Timing
from quadnas.latency.measure.profiler import measure_networks, sample_spread, space_at
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import check_same_precision, file_precision
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace


@dataclass(frozen=True)
class ValidationResult:
    """How well a table's calibrated predictions match measured whole networks."""

    table: str
    backend: str
    clock: str
    precision: str  # of the networks timed: the table's (int8: quantized as the table's models were)
    n: int
    mape_pct: float
    max_err_pct: float
    within_5_pct: float
    within_10_pct: float
    kendall_tau: float
    archs: list[str] = field(default_factory=list)
    measured_ms: list[float] = field(default_factory=list)
    predicted_ms: list[float] = field(default_factory=list)
    host_note: str | None = None  # the table was measured on another host (or one it does not record)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def table_space(table: LatencyTable, space: SearchSpace | None = None) -> SearchSpace:
    """The space to validate on (the table's own, by name, unless given), at the table's resolution.

    A given space must be one the table serves: every op spec of it has a row.
    """
    named = space is None
    space = space_at(space or load_table_space(table), table.meta.resolution)
    if named and space.fingerprint() != table.meta.space_fingerprint:
        raise QuadnasError(
            f"{table.name} was measured on a space with fingerprint {table.meta.space_fingerprint}, but the "
            f"shipped '{space.name}' has {space.fingerprint()}: pass --space with the YAML it was measured on"
        )
    table.check_covers(space.all_op_specs(), space.source)
    return space


def load_table_space(table: LatencyTable) -> SearchSpace:
    """The shipped space a table names, or a one-line error asking for its YAML."""
    try:
        return SearchSpace.load(table.meta.space)
    except QuadnasError:
        raise QuadnasError(
            f"{table.name} was measured on space '{table.meta.space}', which is not shipped: "
            "pass --space with its YAML file"
        ) from None


def table_backend(table: LatencyTable, clock: str | None = None) -> Backend:
    """The table's backend on its target with its threads, timed on its clock (unless `clock`), timing
    models of the table's precision (INT8 tables: quantized networks)."""
    meta = table.meta
    if meta.provenance == "estimated" or meta.backend not in BACKENDS:
        raise QuadnasError(
            f"{table.name} is {meta.provenance} for backend '{meta.backend}', which quadnas cannot run here: "
            f"validate a table measured with one of {', '.join(BACKENDS)}"
        )
    table_clock: str = getattr(meta, "clock", "wall")
    return get_backend(
        meta.backend,
        getattr(meta, "target", None),
        meta.threads or 1,
        clock=clock or table_clock,
        precision=file_precision(meta.precision),
    )


def compare(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Error figures of `predicted` against `measured`."""
    err = np.abs(predicted - measured) / measured * 100
    return {
        "mape_pct": float(err.mean()),
        "max_err_pct": float(err.max()),
        "within_5_pct": float((err <= 5).mean() * 100),
        "within_10_pct": float((err <= 10).mean() * 100),
        "kendall_tau": float(kendalltau(measured, predicted).statistic) if len(err) > 1 else float("nan"),
    }


@keeps_torch_threads
def validate(
    table: LatencyTable,
    space: SearchSpace | None = None,
    n: int = 20,
    seed: int = 1,
    settings: ProfileSettings = ProfileSettings(),
    clock: str | None = None,
    progress: Progress | None = None,
    precision: str | None = None,
) -> ValidationResult:
    """Measure `n` random archs end to end and compare them with the table's predictions.

    The networks are timed on the table's clock unless `clock` is given (e.g. 'wall' to
    check a cpu-clock table against elapsed time), at the table's precision (INT8: quantized);
    a `precision` that mixes INT8 with the table's float (or the reverse) is an error.
    """
    progress = progress or Progress()
    if precision is not None:
        check_same_precision(table.name, table.meta.precision, precision, "--precision")
    if n < 2:
        raise QuadnasError(f"validation needs at least 2 networks, got {n}: e.g. --n 20")
    space = table_space(table, space)
    predictor = LatencyPredictor(table, space)
    backend = table_backend(table, clock)
    calibration_archs = [space.parse(p["arch"]) for p in getattr(table.meta, "calibration_networks", [])]
    archs = sample_spread(space, n, seed, exclude=calibration_archs)
    measured: dict[Arch, Timing] = {}
    with progress.task("measuring whole networks", len(archs), unit="network") as task:

        def done(arch: Arch, timing: Timing) -> None:
            measured[arch] = timing
            task.advance(1, str(arch))

        measure_networks(backend, space, archs, settings, done)
    real = np.array([measured[a].median_ms for a in archs])
    predicted = predictor.predict_many(archs)
    return ValidationResult(
        table=table.name,
        backend=backend.name,
        clock=backend.clock,
        precision=backend.precision,
        n=len(archs),
        **compare(real, predicted),
        archs=[str(a) for a in archs],
        measured_ms=real.round(4).tolist(),
        predicted_ms=predicted.round(4).tolist(),
        host_note=foreign_host_note(table.meta),
    )
