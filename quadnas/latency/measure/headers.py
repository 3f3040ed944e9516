"""What a timed table records: its header, its rows and whole networks from timings, and whether a
table on disk was timed under the conditions a resume would time it under."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, TypedDict

from quadnas._version import __version__
from quadnas.latency.header import Adapted, Calibration, Measurement, NetworkPoint, Provenance, TableMeta
from quadnas.latency.host import Host
from quadnas.latency.measure.backends import Description
from quadnas.latency.measure.models import quantization_text, writer_text
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import INT8
from quadnas.portable.timing import Timing
from quadnas.space import Arch, SearchSpace

# A table resumed from disk must have been measured under the same conditions, on this host; the runtime's
# own settings count where the backend has them (eager torch's input layout; the runtimes of files).
RESUME_KEYS = ("backend", "target", "threads", "clock", "precision", "batch", "resolution", "space_fingerprint")
RESUME_KEYS_IF_KNOWN = ("input_layout", "runtime_config")


def method_text(backend_desc: Description, settings: ProfileSettings, overhead_ms: float, source: str) -> str:
    layout = f"inputs {backend_desc['input_layout']}; " if "input_layout" in backend_desc else ""
    quantized = (
        f"every model (op specs and calibration networks) {quantization_text(backend_desc['backend'])}; "
        if backend_desc["precision"] == INT8
        else ""
    )
    return (
        f"{source}; {backend_desc['backend']} {backend_desc['backend_version']} on {backend_desc['target']} "
        f"with {backend_desc['threads']} thread(s), {backend_desc['precision']}, {backend_desc['clock']} clock; "
        "each op spec's module "
        f"(quadnas.nn.blocks.build_op) {writer_text(backend_desc['backend'])}; "
        f"{quantized}{layout}{settings.describe()}; "
        "row = median per call (p10/p90 beside it) minus the per-call overhead "
        f"{overhead_ms:.4f} ms (median call of an empty model; a network pays it once); calibration: "
        f"least squares measured = a*sum + b (b >= 0, else a plain ratio) over {settings.networks} random "
        "whole networks "
        "(timed round for round with the ops), error by leave-one-out"
    )


def new_meta(
    space: SearchSpace,
    backend_desc: Description,
    settings: ProfileSettings,
    overhead_ms: float,
    source: str,
    host: Host | None,
) -> TableMeta:
    """The header of a freshly measured table, measured on `host` (None: not known)."""
    method = method_text(backend_desc, settings, overhead_ms, source)
    return timed_meta(space, backend_desc, "measured", method, host, overhead_ms)


def timed_meta(
    space: SearchSpace,
    backend_desc: Description,
    provenance: Provenance,
    method: str,
    host: Host | None,
    overhead_ms: float = 0.0,
    adapted: Adapted | None = None,
) -> TableMeta:
    """The header of a table timed here on `backend_desc`'s runtime, before its calibration networks."""
    keys = ("target", "clock", "runtime_config", "input_layout", "delegate")
    measured = {key: value for key, value in backend_desc.items() if key in keys}
    measurement = Measurement.model_validate({**measured, "overhead_ms": overhead_ms})
    return TableMeta(
        device=backend_desc["device"],
        aliases=[],
        backend=backend_desc["backend"],
        backend_version=backend_desc["backend_version"],
        precision=backend_desc["precision"],
        batch=1,
        threads=backend_desc["threads"],
        resolution=space.config.resolution,
        space=space.name,
        space_fingerprint=space.fingerprint(),
        created=datetime.now(timezone.utc),
        quadnas_version=__version__,
        provenance=provenance,
        method=method,
        calibration=Calibration(),
        host=host,
        host_fingerprint=host.fingerprint if host is not None else None,
        measurement=measurement,
        adapted=adapted,
    )


class RowValues(TypedDict):
    """A table row's latency columns (`LatencyTable.upsert`'s keywords)."""

    latency_ms: float
    p10_ms: float
    p90_ms: float
    runs: int


def row_values(timing: Timing, overhead_ms: float) -> RowValues:
    """A table row's latency columns: the timing less the per-call overhead."""
    return {
        "latency_ms": max(timing.median_ms - overhead_ms, 0.0),
        "p10_ms": max(timing.p10_ms - overhead_ms, 0.0),
        "p90_ms": max(timing.p90_ms - overhead_ms, 0.0),
        "runs": timing.runs,
    }


def network_point(arch: Arch, timing: Timing) -> NetworkPoint:
    """One timed whole network as the header stores it."""
    return NetworkPoint(
        arch=str(arch),
        measured_ms=round(timing.median_ms, 5),
        p10_ms=round(timing.p10_ms, 5),
        p90_ms=round(timing.p90_ms, 5),
        runs=timing.runs,
    )


def resume_clash(meta: TableMeta, desc: Description, space: SearchSpace) -> list[str]:
    """'key old (now new)' for each condition the table was timed under that differs now, on `desc`'s
    backend, for `space`, on this host."""
    now = {**desc, "batch": 1, "resolution": space.config.resolution, "space_fingerprint": space.fingerprint()}
    now["host_fingerprint"] = Host.current().fingerprint
    old = meta.file_items()
    keys = (*RESUME_KEYS, "host_fingerprint", *(k for k in RESUME_KEYS_IF_KNOWN if k in now))
    return [f"{k} {old.get(k)} (now {now[k]})" for k in keys if _as_text(old.get(k)) != _as_text(now[k])]


def _as_text(value: Any) -> str:
    """A header value as text that ignores how a file ordered a mapping's keys ('2' and 2 alike)."""
    if isinstance(value, dict):
        return str(sorted((str(k), str(v)) for k, v in value.items()))
    return str(value)
