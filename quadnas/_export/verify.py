"""An export's latency timed on a local runtime, beside the latency table's prediction and the budget."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from quadnas._export.formats import ExportResult
from quadnas._export.source import ExportSource, searched_device
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.devices import load_device_table
from quadnas.latency.host import foreign_host_note
from quadnas.latency.measure.backends import (
    Backend,
    Description,
    LiteRtBackend,
    OnnxBackend,
    OpenVinoBackend,
    get_backend,
    keeps_torch_threads,
    time_session,
)
from quadnas.latency.precision import file_precision
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable, TableMeta
from quadnas.nn.quantize import import_openvino
from quadnas.portable.timing import TimedSession

VERIFY_ROUNDS = 30
ROUND_S = 0.05  # a verify-latency round: at least this long, so short networks repeat many times


@dataclass
class LatencyCheck:
    """An export's measured latency beside the table's prediction and the budget."""

    measured_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    measured_what: str
    backend: Description  # Backend.describe(): backend, version, target, threads, device, precision
    table: str | None = None
    table_provenance: str | None = None
    predicted_ms: float | None = None
    budget: Budget | None = None
    tolerance_pct: float | None = None  # the table's calibration error (worst held-out network)
    same_machine: bool = False
    note: str = ""

    @property
    def error_pct(self) -> float | None:
        """Prediction error relative to the measurement."""
        return None if self.predicted_ms is None else 100 * (self.predicted_ms - self.measured_ms) / self.measured_ms

    @property
    def limit(self) -> Budget | None:
        """The budget plus the table's calibration error: the most a prediction within budget may measure."""
        return None if self.budget is None else self.budget.widened(self.tolerance_pct or 0.0)

    @property
    def passed(self) -> bool | None:
        """Within `limit`; None where no budget gate applies (no budget, or another machine's table)."""
        if not self.same_machine or self.limit is None:
            return None
        return self.limit.admits(self.measured_ms)


def calibration_error_pct(meta: TableMeta) -> float | None:
    """The table's whole-network error: worst held-out network, else the mean."""
    calibration = meta.calibration
    return calibration.max_err_pct if calibration.max_err_pct is not None else calibration.mape_pct


@keeps_torch_threads
def verify_latency(
    source: ExportSource,
    result: ExportResult,
    device: str | None = None,
    backend: str | None = None,
    threads: int | None = None,
    budget: Budget | None = None,
    rounds: int | None = None,
    clock: str | None = None,
) -> LatencyCheck:
    """Time the export on a local runtime at batch 1 and set it beside the prediction of
    `device`'s table (default: the search's device) and the budget.

    The figure is the median call over `rounds` (default 30) rounds of >= 50 ms after a
    warm-up. The runtime, thread count, clock and budget default to the table's and the search's
    (a search of several devices: the budget it set on `device`, the first device by default).
    The budget gate applies only when the table was measured with this backend, thread
    count and clock on this host (by host fingerprint); against another host's table the
    export is still timed here, and `note` says so. An INT8 export is predicted by INT8 tables
    only, a float one by float tables only (else a one-line error).
    """
    searched = None if source.record is None else searched_device(source.record, device)
    device = device or (searched.device if searched is not None else None)
    budget = budget or (Budget(searched.budget_ms) if searched is not None else None)
    table = load_device_table(device) if device else None
    local = ("onnxruntime", "openvino", "torch", "litert")
    backend = backend or (table.meta.backend if table is not None and table.meta.backend in local else "onnxruntime")
    threads = threads or (table.meta.threads if table is not None and table.meta.threads else 1)
    clock = clock or (table.meta.clock if table is not None else "wall")
    if table is not None and table.meta.resolution != result.resolution:
        raise QuadnasError(
            f"table {table.name} predicts at {table.meta.resolution} px but {result.path} was exported at "
            f"{result.resolution} px: export at {table.meta.resolution} px (drop --resolution) to verify its latency"
        )
    precision = result.options.precision
    predicted = LatencyPredictor(table, source.space, precision).predict(source.arch) if table is not None else None
    runtime = get_backend(
        backend, _torch_target(table, backend), threads, clock=clock, precision=file_precision(precision)
    )
    session, what = _timed_session(runtime, source, result)
    timing = time_session(session, rounds or VERIFY_ROUNDS, ROUND_S, warmup_s=0.2)
    check = LatencyCheck(
        timing.median_ms,
        timing.p10_ms,
        timing.p90_ms,
        timing.runs,
        what,
        runtime.describe(),
        budget=budget,
    )
    if table is None:
        check.note = "no latency table named (--device): measured only"
        return check
    meta = table.meta
    check.table, check.table_provenance = table.name, meta.provenance
    check.predicted_ms = predicted
    check.tolerance_pct = calibration_error_pct(meta)
    here: Mapping[str, object] = runtime.describe()
    measured_with = {
        "backend": meta.backend,
        "device": meta.device,
        "threads": meta.threads,
        "clock": meta.clock,
    }
    differs = [
        f"{key} {value!r} (here {here[key]!r})" for key, value in measured_with.items() if str(value) != str(here[key])
    ]
    host_note = foreign_host_note(meta)
    check.same_machine = not differs and host_note is None
    if differs:
        check.note = f"table {table.name} was not measured here ({', '.join(differs)}): no budget gate"
    elif host_note is not None:
        check.note = (
            f"timed on this host, but table {table.name} is not known to be this host's, so no budget gate: {host_note}"
        )
    elif source.model.num_classes != source.space.config.num_classes:
        check.note = (
            f"the table's head has {source.space.config.num_classes} classes, this network's {source.model.num_classes}"
        )
    return check


def _torch_target(table: LatencyTable | None, backend: str) -> str | None:
    """A torch table's own target (e.g. cuda) when verifying with torch and that target runs here, else None."""
    target = table.meta.target if table is not None and table.meta.backend == backend else None
    if backend != "torch" or not target or (str(target).startswith("cuda") and not torch.cuda.is_available()):
        return None
    return str(target)


def _timed_session(runtime: Backend, source: ExportSource, result: ExportResult) -> tuple[TimedSession, str]:
    """A runner of the exported file itself where the runtime reads it (batch pinned to 1),
    else of the same network exported by the backend as the profiler does."""
    pinned = runtime.work_dir / f"pinned{result.path.suffix}"
    if result.format == "onnx" and isinstance(runtime, OnnxBackend):  # onnxruntime, openvino
        import onnx

        graph = onnx.load(str(result.path))
        for value in (*graph.graph.input, *graph.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(graph, str(pinned))
        return runtime.prepare_onnx(pinned), f"{result.path.name} (batch pinned to 1)"
    if result.format == "litert" and isinstance(runtime, LiteRtBackend):  # a .tflite file is written for batch 1
        return runtime.prepare_onnx(result.path), result.path.name
    if result.format == "openvino" and isinstance(runtime, OpenVinoBackend):
        ov = import_openvino()
        model = ov.Core().read_model(str(result.path))
        model.reshape(list(result.input_shape))
        ov.save_model(model, str(pinned), compress_to_fp16=False)
        return runtime.prepare_onnx(pinned), f"{result.path.name} (batch pinned to 1)"
    return (
        runtime.prepare(copy.deepcopy(source.model), result.input_shape),  # a runner may move it to a GPU
        f"the network of {result.path.name}, run by the {runtime.name} backend as the profiler runs networks",
    )
