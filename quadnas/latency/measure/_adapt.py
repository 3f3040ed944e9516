"""Adapt a table to this machine (or a kit's device) from a few whole networks measured end to end.

`adapt(source, space, backend, out)` times N networks of `space` with the profiler's network
code (`measure_networks`), writing each one into the table at `out` as soon as it is timed, so
an interrupted run resumes with the networks it has; then fits `latency.adaptation.fit_adaptation`
and writes the corrected source rows with `provenance: adapted`. The kit does the same on a
device without quadnas (`kit.write_kit(..., adapt_from=source)`, then `kit.import_results`),
through `adapted_table`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from quadnas.errors import QuadnasError
from quadnas.latency.adaptation import MIN_NETWORKS, SCALE_STRENGTH, SHIFT_STRENGTH, adapted_rows, fit_adaptation
from quadnas.latency.header import Adapted, Calibration, SourceRecord, TableMeta
from quadnas.latency.host import Host
from quadnas.latency.measure._profile import keep_network, measure_networks
from quadnas.latency.measure.backends import Backend, Description, keeps_torch_threads
from quadnas.latency.measure.builders import overhead_module
from quadnas.latency.measure.headers import network_point, resume_clash, timed_meta
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.precision import INT8
from quadnas.latency.table import LatencyTable
from quadnas.portable.timing import Timing
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace

ADAPT_TASK = "measuring adaptation networks"
NO_INT8_ADAPTATION = (
    "adapting INT8 tables is not supported: measure one with `quadnas profile --precision int8` (without --adapt)"
)


def adaptation_archs(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """The `n` networks to measure: the smallest arch (it pins the fixed ops and the offset), then
    `SearchSpace.spread`'s archs from small to large with uniform block choices."""
    smallest = space.smallest()
    return [smallest, *space.spread(n - 1, seed, exclude=[smallest])]


def check_networks(n: int) -> None:
    """A one-line error for fewer networks than the fit and its leave-one-out error need."""
    if n < MIN_NETWORKS:
        raise QuadnasError(
            f"adaptation needs at least {MIN_NETWORKS} whole networks, got --networks {n}: e.g. --networks 10"
        )


def check_source(source: LatencyTable, space: SearchSpace) -> None:
    """A one-line error unless `source` is a float table with a row for every op spec of `space` at its resolution."""
    if source.meta.precision == INT8:
        raise QuadnasError(f"cannot adapt {source.name}: {NO_INT8_ADAPTATION}")
    if source.meta.resolution != space.config.resolution:
        raise QuadnasError(
            f"cannot adapt {source.name}: it is for resolution {source.meta.resolution}, but space '{space.name}' "
            f"deploys at {space.config.resolution}: adapt a table made for {space.config.resolution} px"
        )
    missing = source.missing(space.all_op_specs())
    if missing:
        raise QuadnasError(
            f"cannot adapt {source.name} (space '{source.meta.space}') to space '{space.name}': it has no row for "
            f"{len(missing)} of its {len(space.all_op_specs())} op specs (e.g. {missing[0]}): adapt a table made "
            f"for this space, or pass the --space it was made for"
        )


def source_record(source: LatencyTable) -> SourceRecord:
    """What an adapted table says about its source: name, what it is, where it holds, its rows' digest."""
    m = source.meta
    return SourceRecord(
        name=source.name,
        device=m.device,
        provenance=m.provenance,
        backend=f"{m.backend} {m.backend_version}",
        threads=m.threads,
        space=m.space,
        space_fingerprint=m.space_fingerprint,
        host=m.host.describe() if m.host is not None else None,
        host_fingerprint=m.host_fingerprint,
        created=m.created.isoformat(),
        rows_sha=rows_digest(source),
    )


def rows_digest(table: LatencyTable) -> str:
    """16 hex digits of a hash of a table's rows (as the file writes them)."""
    body = table.rows.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def method_text(desc: Description, settings: ProfileSettings, source: LatencyTable, where: str) -> str:
    return (
        f"ADAPTED from {source.name} ({source.meta.provenance}, {source.meta.device}) by {settings.networks} whole "
        f"networks {where}: {desc['backend']} {desc['backend_version']} on {desc['target']} with {desc['threads']} "
        f"thread(s), {desc['precision']}, {desc['clock']} clock, {settings.network_rounds} interleaved rounds each; "
        "rows = source rows x exp(global + kind/stage log factor) plus kernel/expansion/enhancer shifts within a "
        f"stage, ridge {SCALE_STRENGTH:g} on log factors and {SHIFT_STRENGTH:g} on shifts "
        "(quadnas.latency.adaptation), relative least squares (scipy least_squares) with an offset >= 0; "
        "error by leave-one-out"
    )


def adapted_meta(
    space: SearchSpace,
    desc: Description,
    settings: ProfileSettings,
    source: LatencyTable,
    host: Host | None,
    where: str = "measured here",
) -> TableMeta:
    """The header of an adaptation before its fit (no networks yet)."""
    method = method_text(desc, settings, source, where)
    return timed_meta(space, desc, "adapted", method, host, adapted=Adapted(source=source_record(source)))


def fitted(table: LatencyTable, source: LatencyTable, space: SearchSpace) -> LatencyTable:
    """`table` (an adaptation's header with its networks) fitted: corrected source rows, offset, LOO error."""
    points = table.meta.networks()
    fit = fit_adaptation(source, space, [space.parse(p.arch) for p in points], [p.measured_ms for p in points])
    calibration = Calibration(
        a=1.0,
        b_ms=fit.offset_ms,
        mape_pct=fit.loo_mape_pct,
        max_err_pct=fit.loo_max_err_pct,
        networks=fit.networks,
    )
    record = table.meta.adapted.source if table.meta.adapted is not None else source_record(source)
    adapted = Adapted(source=record, fit=fit.header())
    meta = table.meta.model_copy(update={"calibration": calibration, "adapted": adapted})
    return LatencyTable(meta, path=table.path).with_rows(adapted_rows(source, fit))


def adapted_table(
    source: LatencyTable,
    space: SearchSpace,
    desc: Description,
    settings: ProfileSettings,
    host: Host | None,
    timings: list[tuple[Arch, Timing]],
    where: str,
) -> LatencyTable:
    """An adapted table from networks timed elsewhere (a kit's results)."""
    meta = adapted_meta(space, desc, settings, source, host, where)
    points = [network_point(arch, timing) for arch, timing in timings]
    return fitted(LatencyTable(meta.with_networks(points)), source, space)


def open_adaptation(
    out: Path, source: LatencyTable, space: SearchSpace, backend: Backend, restart: bool
) -> LatencyTable | None:
    """The partly done adaptation at `out` to resume, or None to start anew."""
    if restart or not out.exists():
        return None
    table = LatencyTable.read(out)
    if table.meta.provenance != "adapted":
        raise QuadnasError(
            f"{out} holds a {table.meta.provenance} table, not an adaptation: choose another --name, "
            "or pass --restart to replace it"
        )
    clash = resume_clash(table.meta, backend.describe(), space)
    was = table.meta.adapted.source if table.meta.adapted is not None else None
    if was is None or was.rows_sha != rows_digest(source):
        clash.append(f"source {was.name if was else None} (now {source.name}, other rows)")
    if clash:
        raise QuadnasError(
            f"{out} was adapted with {', '.join(clash)}: choose another --name, or pass --restart to adapt anew"
        )
    return table


@keeps_torch_threads
def adapt(
    source: LatencyTable,
    space: SearchSpace,
    backend: Backend,
    out: Path,
    settings: ProfileSettings = ProfileSettings(networks=10),
    restart: bool = False,
    progress: Progress | None = None,
) -> LatencyTable:
    """Adapt `source` to `backend` on this host from `settings.networks` whole networks of `space`.

    Each network is saved to `out` as soon as it is timed; rerunning after an interruption keeps
    them and times only the rest. `progress` gets ADAPT_TASK (one step per network).
    """
    progress = progress or Progress()
    if backend.quantized:
        raise QuadnasError(f"cannot adapt to INT8: {NO_INT8_ADAPTATION}")
    check_networks(settings.networks)
    check_source(source, space)
    backend.prepare(*overhead_module())  # compile one model first: the backend then knows its precision
    table = open_adaptation(out, source, space, backend, restart)
    if table is None:
        table = LatencyTable(adapted_meta(space, backend.describe(), settings, source, Host.current()))
        table = table.merged(source)  # the source's rows until the fit
        table.write(out)
    archs = adaptation_archs(space, settings.networks, settings.seed)
    done = {p.arch for p in table.meta.networks()}
    todo = [a for a in archs if str(a) not in done]
    with progress.task(ADAPT_TASK, len(archs), len(archs) - len(todo), unit="network") as task:

        def network_done(arch: Arch, timing: Timing) -> None:
            keep_network(table, out, arch, timing)
            task.advance(1, str(arch))

        measure_networks(backend, space, todo, settings, network_done)
    result = fitted(table, source, space)
    result.write(out)
    return result
