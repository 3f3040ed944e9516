"""Check a measured or adapted table against whole networks measured end to end.

Random archs of the table's space (spread from small to large, none of the
calibration or adaptation networks) are measured on the table's own backend, target, threads and
clock with the profiler's network code, and compared with the calibrated prediction.
The networks are timed on this host: against a table measured on another host the
result says so (`host_note`).

Then the same networks are timed once more, from the same files in fresh sessions and in another
order (`repeat`): how far the second measurement is from the first, in the same figures as the
prediction's error, is this machine's noise floor. A prediction cannot be expected to come closer to
a measurement than another measurement does, so a table whose error is near that floor is as good as
the machine lets one tell, and one far above it is wrong.

The repeat cannot see a machine that runs at another speed for minutes at a time (a shared VM, a
thermal state, other load), and a table profiled in one such state predicts every network of another
off by one factor. So a few of the table's own calibration networks, whose profiled times the table
records, are timed again among the held-out networks (`reference_*`): their time now over their time
at profiling is the machine's speed against the profile's, and the prediction scaled by it says how
good the table's shape is at the machine's present speed.
"""

from __future__ import annotations

import contextlib
import functools
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from quadnas.errors import QuadnasError
from quadnas.latency.host import foreign_host_note
from quadnas.latency.measure._profile import measure_networks
from quadnas.latency.measure.backends import BACKENDS, Backend, OnnxBackend, get_backend, keeps_torch_threads
from quadnas.latency.measure.builders import network_input_shape, space_at
from quadnas.latency.measure.models import model_files, model_suffix, write_model
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import INT8, check_same_precision, file_precision
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.nn import QuadraNet
from quadnas.portable.timing import TimedSession, Timing
from quadnas.progress import Progress, Task
from quadnas.space import Arch, SearchSpace

FLOOR_FACTOR = (
    1.5  # a table whose error is within this many times the repeat error is as good as the noise lets one tell
)
MEASURE_TASK, REPEAT_TASK = "measuring whole networks", "measuring them again (the noise floor)"
REFERENCES = 4  # calibration networks timed again beside the held-out ones: enough for a median, few enough to be cheap
SPEED_TOLERANCE = 0.05  # a speed ratio further than this from 1 is another speed than the profile's (the goal's ±5 %)


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
    repeat_ms: list[float] | None = None  # each network measured a second time (None: not repeated)
    repeat: dict[str, float] | None = None  # `compare` of the second measurement against the first: the noise floor
    reference_archs: list[str] = field(default_factory=list)  # calibration networks of the table, timed again
    reference_profiled_ms: list[float] = field(default_factory=list)  # their times recorded at profiling
    reference_ms: list[float] = field(default_factory=list)  # their times now, among the held-out networks
    speed_ratio: float | None = None  # median of now / at profiling: above 1, this machine runs slower than then
    at_speed: dict[str, float] | None = None  # `compare` of the prediction times speed_ratio: the table's shape

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def speed_note(self) -> str | None:
        """One sentence on this machine's speed against the profile's; None without reference networks."""
        if self.speed_ratio is None or self.at_speed is None:
            return None
        ratios = np.array(self.reference_ms) / np.array(self.reference_profiled_ms)
        measured = (
            f"the table's own calibration networks ran at {self.speed_ratio:.2f}x their profiled times "
            f"({ratios.min():.2f}-{ratios.max():.2f}x, {len(ratios)} networks)"
        )
        if abs(self.speed_ratio - 1) <= SPEED_TOLERANCE:
            return f"{measured}: this machine runs as fast as when the table was measured"
        return (
            f"{measured}: this machine runs at another speed than when the table was measured (other load, a "
            f"shared VM's or a thermal state, another host), so every prediction is off by that factor; at this "
            f"speed the prediction error is {self.at_speed['mape_pct']:.2f}% "
            f"({self.at_speed['within_5_pct']:.0f}% within ±5%). Re-profile on a quiet machine where the two differ"
        )

    def floor_note(self) -> str | None:
        """One sentence comparing the prediction's error with the repeat error; None when not repeated."""
        if self.repeat is None:
            return None
        floor = self.repeat["mape_pct"]
        ratio = self.mape_pct / floor if floor > 0 else float("inf")
        where = (
            f"within {FLOOR_FACTOR:g}x this machine's noise floor: the table is as good as this machine lets one tell"
            if ratio <= FLOOR_FACTOR
            else f"more than {FLOOR_FACTOR:g}x this machine's noise floor: the error is the table's, not the machine's"
        )
        return (
            f"prediction error {self.mape_pct:.2f}% against a repeat error of {floor:.2f}% "
            f"(the same networks measured twice; {self.repeat['within_5_pct']:.0f}% of them within ±5%): {where}"
        )


class NetworkFiles:
    """Each network exported once, and opened as often as it is timed (eager torch times its module instead).

    Without `keep_in` the files are temporary and deleted on leaving the `with` block. With it, a network's
    file is `keep_in/<kind>/<arch><suffix>` (kind: onnx-fp32, which both ONNX runtimes time, or the runtime
    and precision): one already there is timed as it is, and the files stay (benchmarks time the same files
    under several settings)."""

    def __init__(self, space: SearchSpace, keep_in: Path | None = None):
        self.space, self.keep_in = space, keep_in
        self.paths: dict[tuple[str, Arch], Path] = {}

    def path(self, backend: OnnxBackend, arch: Arch) -> Path:
        """The file `backend` times for `arch`, written first where it is missing."""
        precision = INT8 if backend.quantized else "fp32"
        suffix = model_suffix(backend.name, precision)
        kind = (
            "onnx-fp32" if suffix == ".onnx" and precision != INT8 else f"{backend.name}-{precision}"
        )  # one ONNX file serves both runtimes
        key = (kind, arch)
        if key in self.paths:
            return self.paths[key]
        module, shape = QuadraNet(self.space, arch).eval(), network_input_shape(self.space)
        if self.keep_in is None:
            self.paths[key] = backend.write_model(module, shape)
            return self.paths[key]
        out = self.keep_in / kind / f"{arch}{suffix}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            write_model(module, shape, out, backend.name, precision)
        self.paths[key] = out
        return out

    def open(self, backend: Backend, arch: Arch) -> TimedSession:
        """A session of `arch` on `backend`, from its file."""
        if not isinstance(backend, OnnxBackend):
            return backend.prepare(QuadraNet(self.space, arch).eval(), network_input_shape(self.space))
        return backend.prepare_onnx(self.path(backend, arch))

    def __enter__(self) -> NetworkFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.keep_in is None:
            for path in self.paths.values():
                for file in model_files(path):
                    file.unlink(missing_ok=True)


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
    return get_backend(
        meta.backend,
        meta.target,
        meta.threads or 1,
        clock=clock or meta.clock,
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


def reference_networks(table: LatencyTable, space: SearchSpace, count: int = REFERENCES) -> list[tuple[Arch, float]]:
    """Up to `count` of the table's calibration networks, spread from its fastest to its slowest, each with its
    time recorded at profiling."""
    points = sorted(table.meta.networks(), key=lambda p: p.measured_ms)
    if not points:
        return []
    picks = dict.fromkeys(np.linspace(0, len(points) - 1, min(count, len(points))).round().astype(int).tolist())
    return [(space.parse(points[i].arch), points[i].measured_ms) for i in picks]


def measure_pass(
    backend: Backend,
    space: SearchSpace,
    archs: list[Arch],
    settings: ProfileSettings,
    task: AbstractContextManager[Task],
    files: NetworkFiles,
) -> np.ndarray:
    """Each arch's median latency (ms), in the order of `archs`; `task` advances one step per network."""
    measured: dict[Arch, Timing] = {}
    with task as step:

        def done(arch: Arch, timing: Timing) -> None:
            measured[arch] = timing
            step.advance(1, str(arch))

        measure_networks(backend, space, archs, settings, done, functools.partial(files.open, backend))
    return np.array([measured[a].median_ms for a in archs])


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
    repeat: bool = True,
    files: NetworkFiles | None = None,
    archs: list[Arch] | None = None,
) -> ValidationResult:
    """Measure `n` random archs end to end and compare them with the table's predictions.

    The networks are timed on the table's clock unless `clock` is given (e.g. 'wall' to
    check a cpu-clock table against elapsed time), at the table's precision (INT8: quantized);
    a `precision` that mixes INT8 with the table's float (or the reverse) is an error.
    `repeat`: time them a second time, from the same files, for the noise floor (`ValidationResult.repeat`).
    Up to REFERENCES of the table's calibration networks are timed in the first pass too, for the machine's
    speed against the profile's (`ValidationResult.speed_ratio`).
    `progress` gets MEASURE_TASK (the held-out and the reference networks), then REPEAT_TASK, one step per
    network. `files`: where the networks' files come from (default: exported here, deleted at the end).
    `archs`: the networks to time instead of `n` random ones that are none of the table's calibration networks
    (to time several tables on the same networks).
    """
    progress = progress or Progress()
    if precision is not None:
        check_same_precision(table.name, table.meta.precision, precision, "--precision")
    if (n if archs is None else len(archs)) < 2:
        raise QuadnasError(f"validation needs at least 2 networks, got {n}: e.g. --n 20")
    space = table_space(table, space)
    predictor = LatencyPredictor(table, space)
    backend = table_backend(table, clock)
    if archs is None:
        calibration_archs = [space.parse(p.arch) for p in table.meta.networks()]
        archs = space.spread(n, seed, exclude=calibration_archs)
    # profiled times are on the table's clock: against another clock they say nothing of the machine's speed
    references = reference_networks(table, space) if backend.clock == table.meta.clock else []
    references = [(a, ms) for a, ms in references if a not in archs]
    timed = [*archs, *(a for a, _ in references)]  # in one pass, so that they meet the same speed
    with contextlib.nullcontext(files) if files is not None else NetworkFiles(space) as files:
        real = measure_pass(
            backend, space, timed, settings, progress.task(MEASURE_TASK, len(timed), unit="network"), files
        )
        real, reference_now = real[: len(archs)], real[len(archs) :]
        again = None
        if repeat:  # another order, so that a network's neighbours in time differ too
            task = progress.task(REPEAT_TASK, len(archs), unit="network")
            again = measure_pass(backend, space, archs, replace(settings, seed=settings.seed + 1), task, files)
    predicted = predictor.predict_many(archs)
    profiled = np.array([ms for _, ms in references])
    speed = float(np.median(reference_now / profiled)) if references else None
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
        repeat_ms=again.round(4).tolist() if again is not None else None,
        repeat=compare(real, again) if again is not None else None,
        reference_archs=[str(a) for a, _ in references],
        reference_profiled_ms=profiled.round(4).tolist(),
        reference_ms=reference_now.round(4).tolist(),
        speed_ratio=round(speed, 4) if speed is not None else None,
        at_speed=compare(real, predicted * speed) if speed is not None else None,
    )
