"""Measure a search space's op specs on a backend and write a latency table.

Every op spec of `space.all_op_specs()` becomes the module the network uses
(`build_op`), is exported once and timed with the interleaved schedule of
`quadnas.portable.timing.measure_interleaved`; each row is written to the table (atomically) as
soon as it is measured, so an interrupted run resumes where it stopped. The fixed
per-call cost of the runtime (an empty model's call) is subtracted from every row: a
whole network pays it once, not once per block. A few random whole networks are timed in the
same interleaved run as the ops, round for round, and a calibration `measured ≈ a·sum + b` is
fitted to them (`latency.calibration`): a machine whose speed changes while it runs (a shared VM)
then shifts both sides of the fit alike, instead of the ops in one state and the networks in
another. Its leave-one-out error goes into the header, with the host it was measured on. The
modules timed come from `builders`, the header and rows from `headers`.
An INT8 backend (`get_backend(..., precision="int8")`) quantizes every model it times, op specs
and networks alike (`models.write_model`), and the header says `precision: int8`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from quadnas.errors import QuadnasError
from quadnas.latency.calibration import calibrate
from quadnas.latency.host import Host
from quadnas.latency.measure.backends import Backend, keeps_torch_threads
from quadnas.latency.measure.builders import network_input_shape, op_module, overhead_module
from quadnas.latency.measure.headers import network_point, new_meta, resume_clash, row_values
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.table import LatencyTable
from quadnas.nn import QuadraNet
from quadnas.nn.blocks import op_input_shape
from quadnas.portable.timing import TimedSession, Timing, measure_interleaved
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace

OVERHEAD_KEY = "overhead"
OPS_TASK, NETWORKS_TASK = "measuring op specs", "measuring calibration networks"
ROUNDS_TASK = "timing rounds"  # of ops and networks together: they complete together, at the end


def keep_network(table: LatencyTable, out: Path, arch: Arch, timing: Timing) -> None:
    """Add one timed whole network to the table's header and write it (a resume keeps it)."""
    table.meta = table.meta.with_networks([*table.meta.networks(), network_point(arch, timing)])
    table.write(out)


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


def open_table(out: Path, space: SearchSpace, backend: Backend, restart: bool) -> LatencyTable | None:
    """The partly measured table at `out` to resume, or None to start anew."""
    if restart or not out.exists():
        return None
    table = LatencyTable.read(out)
    clash = resume_clash(table.meta, backend.describe(), space)
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
    row, noted with its op spec) and NETWORKS_TASK (one per calibration network), which advance together at
    the end, and ROUNDS_TASK (one step per timed round of either) to show the way there.
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
    overhead = table.meta.measurement.overhead_ms if table.meta.measurement is not None else 0.0
    todo = [str(s) for s in table.missing(specs)]
    archs = space.spread(settings.networks, settings.seed)
    arch_of = {str(a): a for a in archs}
    done_archs = {p.arch for p in table.meta.networks()}
    todo_archs = [key for key in arch_of if key not in done_archs]

    keys = todo + todo_archs
    with (
        progress.task(ROUNDS_TASK, len(keys) * settings.rounds, unit="round") as rounds,
        progress.task(OPS_TASK, len(specs), len(specs) - len(todo), unit="op") as ops,
        progress.task(NETWORKS_TASK, len(archs), len(archs) - len(todo_archs), unit="network") as networks,
    ):

        def done(key: str, timing: Timing) -> None:
            if key in arch_of:
                keep_network(table, out, arch_of[key], timing)
                networks.advance(1, key)
            else:
                table.upsert(spec_of[key], **row_values(timing, overhead))
                table.write(out)
                ops.advance(1, key)

        def open_model(key: str) -> TimedSession:
            if key in arch_of:
                return backend.prepare(QuadraNet(space, arch_of[key]).eval(), network_input_shape(space))
            spec = spec_of[key]
            return backend.prepare(op_module(spec, space), op_input_shape(spec), channels_last=spec.op != "stem")

        measure_interleaved(
            keys, open_model, settings.op_schedule(), done, seed=settings.seed, on_round=lambda _: rounds.advance(1)
        )
    calibrate(table, space)
    table.write(out)
    return table
