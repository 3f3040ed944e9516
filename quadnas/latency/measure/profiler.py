"""Measure a search space's op specs on a backend and write a latency table.

Every op spec of `space.all_op_specs()` becomes the module the network uses
(`build_op`), is exported once and timed with the interleaved schedule of
`quadnas.portable.timing.measure_interleaved`; each row is written to the table (atomically) as
soon as it is measured, so an interrupted run resumes where it stopped. The fixed
per-call cost of the runtime (an empty model's call) is subtracted from every row: a
whole network pays it once, not once per block. Finally a few random whole networks
are measured with the same runner code and a calibration `measured ≈ a·sum + b` is
fitted; its leave-one-out error goes into the header, with the host it was measured on.
An INT8 backend (`get_backend(..., precision="int8")`) quantizes every model it times, op specs
and networks alike (`models.write_model`), and the header says `precision: int8`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch import nn

from quadnas._version import __version__
from quadnas.errors import QuadnasError
from quadnas.latency.host import Host
from quadnas.latency.measure.backends import Backend, Description, keeps_torch_threads
from quadnas.latency.measure.models import quantization_text, writer_text
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import INT8
from quadnas.latency.table import Calibration, LatencyTable, Provenance, TableMeta
from quadnas.nn import QuadraNet
from quadnas.nn.blocks import build_op, init_weights, op_input_shape
from quadnas.portable.timing import TimedSession, Timing, measure_interleaved
from quadnas.progress import Progress
from quadnas.space import IDENTITY, Arch, OpSpec, SearchSpace

OVERHEAD_KEY = "overhead"
# A table resumed from disk must have been measured under the same conditions, on this host.
RESUME_KEYS = (
    "backend",
    "target",
    "threads",
    "clock",
    "precision",
    "batch",
    "resolution",
    "space_fingerprint",
    "host_fingerprint",
)
RESUME_KEYS_IF_KNOWN = ("input_layout", "runtime_config")  # where the backend has them (eager torch; runtimes of files)
OPS_TASK, NETWORKS_TASK = "measuring op specs", "measuring calibration networks"


# ---- spaces, archs, modules ---------------------------------------------------
def space_at(space: SearchSpace, resolution: int | None) -> SearchSpace:
    """`space` deployed at `resolution` (a different fingerprint: other shapes, other rows)."""
    if resolution is None or resolution == space.config.resolution:
        return space
    space.check_resolution(resolution)
    return SearchSpace(space.config.model_copy(update={"resolution": resolution}), space.source)


def sample_spread(space: SearchSpace, n: int, seed: int, exclude: Iterable[Arch] = ()) -> list[Arch]:
    """`n` distinct random archs spread from small to large.

    Arch i turns each block into identity with probability rising from 0 to 0.8
    (where the space allows identity), otherwise picks a uniform non-identity choice.
    """
    rng = random.Random(seed)
    blocks = [c for c in space.choices if not c.is_identity]
    seen = set(exclude)
    archs: list[Arch] = []
    for _ in range(100 * n):
        if len(archs) == n:
            break
        i = len(archs)
        p_identity = 0.8 * i / max(n - 1, 1) if IDENTITY in space.choices else 0.0
        arch = Arch(
            tuple(IDENTITY if rng.random() < p_identity else rng.choice(blocks) for _ in range(space.num_blocks))
        )
        if arch not in seen:
            seen.add(arch)
            archs.append(arch)
    rng.shuffle(archs)
    return archs


def op_module(spec: OpSpec, space: SearchSpace) -> nn.Module:
    """The module that runs `spec`, initialised like a network."""
    module = build_op(spec, space.config.stem_patch)
    init_weights(module)
    return module.eval()


def network_input_shape(space: SearchSpace) -> tuple[int, int, int, int]:
    r = space.config.resolution
    return (1, space.config.in_channels, r, r)


class _Identity(nn.Module):
    """The smallest model a runtime still calls: its time is the fixed per-call cost."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def overhead_module() -> tuple[nn.Module, tuple[int, ...]]:
    return _Identity(), (1, 8)


# ---- calibration ----------------------------------------------------------
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


# ---- metadata -------------------------------------------------------------
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
        f"({settings.network_rounds} interleaved rounds each), error by leave-one-out"
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
    extra: dict[str, Any] = {
        "overhead_ms": overhead_ms,
        **({"input_layout": backend_desc["input_layout"]} if "input_layout" in backend_desc else {}),
        **({"delegate": backend_desc["delegate"]} if "delegate" in backend_desc else {}),
    }
    method = method_text(backend_desc, settings, overhead_ms, source)
    return timed_meta(space, backend_desc, "measured", method, host, extra)


def timed_meta(
    space: SearchSpace,
    backend_desc: Description,
    provenance: Provenance,
    method: str,
    host: Host | None,
    extra: dict[str, Any],
) -> TableMeta:
    """The header of a table timed here on `backend_desc`'s runtime, before its calibration networks.

    `extra`: the keys (TableMeta keeps them) beyond those every timed table has (target, clock,
    calibration_networks).
    """
    return TableMeta(
        device=backend_desc["device"],
        aliases=[],
        backend=backend_desc["backend"],
        backend_version=backend_desc["backend_version"],
        precision=backend_desc["precision"],
        batch=1,
        threads=int(backend_desc["threads"]),
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
        **{
            "target": backend_desc["target"],
            "clock": backend_desc["clock"],
            **({"runtime_config": backend_desc["runtime_config"]} if "runtime_config" in backend_desc else {}),
            "calibration_networks": [],
            **extra,
        },
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


def network_point(arch: Arch, timing: Timing) -> dict[str, str | float]:
    """One calibration network as stored in the header."""
    return {
        "arch": str(arch),
        "measured_ms": round(timing.median_ms, 5),
        "p10_ms": round(timing.p10_ms, 5),
        "p90_ms": round(timing.p90_ms, 5),
        "runs": timing.runs,
    }


def measured_key(meta: TableMeta, key: str) -> Any:
    """A key of a measured table's header that TableMeta keeps as an extra (target, clock, overhead_ms, ...)."""
    return getattr(meta, key)


def keep_network(table: LatencyTable, out: Path, arch: Arch, timing: Timing) -> None:
    """Add one timed whole network to the table's `calibration_networks` and write it (a resume keeps it)."""
    points = [*calibration_networks(table.meta), network_point(arch, timing)]
    table.meta = table.meta.model_copy(update={"calibration_networks": points})
    table.write(out)


def calibration_networks(meta: TableMeta) -> list[dict[str, Any]]:
    """The calibration networks (`network_point`s) in a measured table's header."""
    points: list[dict[str, Any]] = measured_key(meta, "calibration_networks")
    return points


def calibrate(table: LatencyTable, space: SearchSpace) -> None:
    """Fit the table's calibration to the networks stored in its header (rows must cover them)."""
    points = calibration_networks(table.meta)
    sums = [float(table.lookup(space.op_specs(space.parse(p["arch"]))).sum()) for p in points]
    calibration = fit_calibration(sums, [p["measured_ms"] for p in points])
    table.meta = table.meta.model_copy(update={"calibration": calibration})


# ---- measuring ------------------------------------------------------------
def measure_networks(
    backend: Backend,
    space: SearchSpace,
    archs: list[Arch],
    settings: ProfileSettings,
    on_done: Callable[[Arch, Timing], None],
    open_network: Callable[[Arch], TimedSession] | None = None,
) -> None:
    """Time whole random-init networks (exported once each), interleaved like the ops.

    `open_network`: how a network's session is made (default: `backend.prepare` on a fresh export)."""
    by_key = {str(a): a for a in archs}

    def open_session(key: str) -> TimedSession:
        if open_network is not None:
            return open_network(by_key[key])
        return backend.prepare(QuadraNet(space, by_key[key]).eval(), network_input_shape(space))

    measure_interleaved(
        list(by_key),
        open_session,
        settings.network_schedule(len(by_key)),
        lambda key, timing: on_done(by_key[key], timing),
        seed=settings.seed,
    )


def measure_overhead(backend: Backend, settings: ProfileSettings) -> float:
    """The fixed per-call cost (ms): the median call of an empty model."""
    module, shape = overhead_module()
    found: list[Timing] = []
    measure_interleaved(
        [OVERHEAD_KEY],
        lambda _: backend.prepare(module, shape),
        settings.op_schedule(),
        lambda _, timing: found.append(timing),
        seed=settings.seed,
    )
    return found[0].median_ms


def resume_clash(meta: TableMeta, now: dict[str, Any]) -> list[str]:
    """'key old (now new)' for every condition of RESUME_KEYS (and RESUME_KEYS_IF_KNOWN that `now` has) that differs."""
    old = meta.model_dump()
    keys = RESUME_KEYS + tuple(k for k in RESUME_KEYS_IF_KNOWN if k in now)
    return [f"{k} {old.get(k)} (now {now[k]})" for k in keys if _as_text(old.get(k)) != _as_text(now[k])]


def _as_text(value: Any) -> str:
    """A header value as text that ignores how a file ordered a mapping's keys ('2' and 2 alike)."""
    if isinstance(value, dict):
        return str(sorted((str(k), str(v)) for k, v in value.items()))
    return str(value)


def open_table(out: Path, space: SearchSpace, backend: Backend, restart: bool) -> LatencyTable | None:
    """The partly measured table at `out` to resume, or None to start anew."""
    if restart or not out.exists():
        return None
    table = LatencyTable.read(out)
    now = {
        **backend.describe(),
        "batch": 1,
        "resolution": space.config.resolution,
        "space_fingerprint": space.fingerprint(),
        "host_fingerprint": Host.current().fingerprint,
    }
    clash = resume_clash(table.meta, now)
    if clash:
        was = ", ".join(clash)
        raise QuadnasError(
            f"{out} was measured with {was}: choose another --name, or pass --restart to measure it anew"
        )
    return table


@keeps_torch_threads
def profile(
    space: SearchSpace,
    backend: Backend,
    out: Path,
    settings: ProfileSettings = ProfileSettings(),
    restart: bool = False,
    progress: Progress | None = None,
) -> LatencyTable:
    """Measure every op spec of `space` missing from the table at `out`, then calibrate it.

    Rows are written to `out` as they are measured; rerunning after an interruption keeps
    them and measures only the rest. `progress` gets two tasks, OPS_TASK (one step per saved
    row, noted with its op spec) and NETWORKS_TASK (one per calibration network).
    """
    progress = progress or Progress()
    specs = space.all_op_specs()
    spec_of = {str(s): s for s in specs}
    # Compile one model first so the backend knows the precision it really runs at.
    backend.prepare(*overhead_module())
    table = open_table(out, space, backend, restart)
    if table is None:
        table = LatencyTable(
            new_meta(
                space,
                backend.describe(),
                settings,
                measure_overhead(backend, settings),
                "measured here",
                Host.current(),
            )
        )
        table.write(out)
    overhead = float(measured_key(table.meta, "overhead_ms"))
    todo = [str(s) for s in table.missing(specs)]
    archs = sample_spread(space, settings.networks, settings.seed)
    done_archs = {p["arch"] for p in calibration_networks(table.meta)}
    todo_archs = [a for a in archs if str(a) not in done_archs]

    with progress.task(OPS_TASK, len(specs), len(specs) - len(todo), unit="op") as ops:

        def row_done(key: str, timing: Timing) -> None:
            table.upsert(spec_of[key], **row_values(timing, overhead))
            table.write(out)
            ops.advance(1, key)

        def open_op(key: str) -> TimedSession:
            spec = spec_of[key]
            return backend.prepare(op_module(spec, space), op_input_shape(spec), channels_last=spec.op != "stem")

        measure_interleaved(todo, open_op, settings.op_schedule(), row_done, seed=settings.seed)

    with progress.task(NETWORKS_TASK, len(archs), len(archs) - len(todo_archs), unit="network") as networks:

        def network_done(arch: Arch, timing: Timing) -> None:
            keep_network(table, out, arch, timing)
            networks.advance(1, str(arch))

        measure_networks(backend, space, todo_archs, settings, network_done)
    calibrate(table, space)
    table.write(out)
    return table
