"""Adapting a table from a few whole networks: the fit (synthetic, no timing), the table, the CLI and the kit."""

import json
import subprocess
import sys

import numpy as np
import pytest
from builders import shape_cost_ms, table_of

from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.adaptation import MIN_NETWORKS, adapted_rows, fit_adaptation, group
from quadnas.latency.header import Calibration
from quadnas.latency.host import Host
from quadnas.latency.measure._adapt import ADAPT_TASK, adapt, adaptation_archs
from quadnas.latency.measure._validate import validate
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.measure.kit import import_results
from quadnas.latency.measure.settings import ProfileSettings
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.progress import Progress, ProgressEvent
from quadnas.space import SearchSpace

QUICK = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=4, network_rounds=2)
STAGE_FACTORS = {16: 0.5, 24: 2.0, 32: 1.0, 48: 3.0}  # tiny's stages by width: the "device" is off per stage


class Interrupt(Exception):
    pass


def source_of(space: SearchSpace, **meta) -> LatencyTable:
    return table_of(space, shape_cost_ms, provenance="estimated", backend="tflite", **meta)


def device_ms(space, archs, factor_of, offset=0.3):
    """Whole-network latencies of a device whose rows are the source's times `factor_of(spec)`."""
    return [offset + sum(factor_of(s) * shape_cost_ms(s) for s in space.op_specs(a)) for a in archs]


def per_stage(spec):
    return 1.5 * STAGE_FACTORS.get(spec.cin, 1.0) if spec.op == "quadra_block" else 1.5


def test_the_fit_recovers_known_stage_factors(tiny_space):
    source = source_of(tiny_space)
    archs = tiny_space.spread(40, seed=3)
    fit = fit_adaptation(source, tiny_space, archs, device_ms(tiny_space, archs, per_stage))
    blocks = [s for s in tiny_space.all_op_specs() if s.op == "quadra_block"]
    for spec in blocks:
        assert fit.row_ms(spec, shape_cost_ms(spec)) == pytest.approx(per_stage(spec) * shape_cost_ms(spec), rel=0.03)
    # stem, downsamples and head run in every network: only their sum with the offset is determined
    fixed = [s for s in tiny_space.op_specs(tiny_space.smallest())]
    intercept = fit.offset_ms + sum(fit.row_ms(s, shape_cost_ms(s)) for s in fixed)
    assert intercept == pytest.approx(0.3 + sum(1.5 * shape_cost_ms(s) for s in fixed), rel=0.03)
    assert fit.loo_mape_pct < 1 and fit.networks == 40 and len(fit.loo_errors_pct) == 40


def test_a_kernel_shift_within_a_stage_is_recovered(tiny_space):
    """A device where k7 blocks of one stage cost a fixed amount less than the source says (k3 and k5 do not)."""
    source = source_of(tiny_space)
    k7 = [s for s in tiny_space.all_op_specs() if s.op == "quadra_block" and s.cin == 24 and s.kernel == 7]
    cut = 0.5 * min(shape_cost_ms(s) for s in k7)

    def true_ms(spec):
        return shape_cost_ms(spec) - (cut if spec in k7 else 0.0)

    archs = tiny_space.spread(60, seed=4)
    measured = [0.1 + sum(true_ms(s) for s in tiny_space.op_specs(a)) for a in archs]
    fit = fit_adaptation(source, tiny_space, archs, measured)
    held = tiny_space.spread(30, seed=5, exclude=archs)
    table = LatencyTable(source.meta.model_copy(update={"calibration": Calibration(b_ms=fit.offset_ms)}))
    predicted = LatencyPredictor(table.with_rows(adapted_rows(source, fit)), tiny_space).predict_many(held)
    real = np.array([0.1 + sum(true_ms(s) for s in tiny_space.op_specs(a)) for a in held])
    assert np.abs(predicted / real - 1).max() < 0.02
    shifted = f"{group(k7[0])} k=7"
    assert fit.shifts[shifted] < -0.05 and min(fit.shifts, key=fit.shifts.__getitem__) == shifted


def test_an_unmeasured_kind_keeps_the_global_factor(tiny_space):
    """Only k3e2 blocks (and identities) run in the networks: every other kernel's row moves by the global
    factor times its stage's factor, and the head's and stem's by the global factor alone."""
    source = source_of(tiny_space)
    k3e2 = next(c for c in tiny_space.choices if c.kernel == 3 and c.expansion == 2)
    archs = [a for a in tiny_space.spread(200, seed=6) if set(a.blocks) <= {k3e2, tiny_space.smallest().blocks[0]}]
    assert len(archs) >= MIN_NETWORKS
    fit = fit_adaptation(source, tiny_space, archs, device_ms(tiny_space, archs, lambda s: 2.0))
    assert all(f == pytest.approx(1.0) for t, f in fit.factors.items() if not t.startswith("quadra_block"))
    unseen = [t for t in fit.shifts if " k=3" not in t and " e=2" not in t and " q=0" not in t]
    assert unseen and all(fit.shifts[t] == pytest.approx(0.0, abs=1e-9) for t in unseen)
    k7 = next(s for s in tiny_space.all_op_specs() if s.op == "quadra_block" and s.kernel == 7)
    expected = fit.global_scale * fit.factors[group(k7)] * shape_cost_ms(k7)
    assert fit.row_ms(k7, shape_cost_ms(k7)) == pytest.approx(expected)


def test_the_fit_needs_three_networks(tiny_space):
    archs = tiny_space.spread(2, seed=0)
    with pytest.raises(QuadnasError, match="at least 3 whole networks"):
        fit_adaptation(source_of(tiny_space), tiny_space, archs, [1.0, 2.0])


def test_adaptation_archs_start_from_the_smallest(tiny_space):
    archs = adaptation_archs(tiny_space, 6, seed=0)
    assert archs[0] == tiny_space.smallest() and len(set(archs)) == 6


@pytest.fixture(scope="module")
def adapted(tiny_space, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adapt")
    source = source_of(tiny_space)
    source.write(tmp / "far-away.csv")
    return adapt(source, tiny_space, get_backend("onnxruntime"), tmp / "here.csv", QUICK)


def test_the_adapted_table_round_trips_with_its_metadata(adapted, tiny_space):
    table = LatencyTable.read(adapted.path)
    meta = table.meta
    assert meta.provenance == "adapted" and meta.backend == "onnxruntime" and meta.threads == 1
    assert meta.host == Host.current() and meta.host_fingerprint == Host.current().fingerprint
    assert meta.adapted is not None and meta.adapted.fit is not None
    assert meta.adapted.source.name == "far-away" and meta.adapted.source.provenance == "estimated"
    assert len(meta.networks()) == QUICK.networks == meta.calibration.networks
    assert all(p.measured_ms > 0 for p in meta.networks())
    assert meta.calibration.a == 1.0 and meta.calibration.b_ms == pytest.approx(meta.adapted.fit.offset_ms, abs=1e-5)
    assert meta.calibration.mape_pct == pytest.approx(meta.adapted.fit.loo_mape_pct, abs=1e-3)
    assert meta.calibration.max_err_pct >= meta.calibration.mape_pct >= 0
    assert not table.missing(tiny_space.all_op_specs())
    assert LatencyPredictor(table, tiny_space).predict(tiny_space.largest()) > 0


def test_validate_takes_an_adapted_table(adapted):
    result = validate(adapted, n=3, settings=QUICK)
    assert result.n == 3 and not {p.arch for p in adapted.meta.networks()} & set(result.archs)


def test_an_interrupted_adaptation_keeps_its_networks(tiny_space, tmp_path):
    source = source_of(tiny_space)
    backend, out = get_backend("onnxruntime"), tmp_path / "t.csv"
    settings = ProfileSettings(round_ms=2, window=1, warmup_ms=5, networks=4, network_rounds=1)

    def stop_after_two(event: ProgressEvent):
        if event.what == ADAPT_TASK and event.done == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        adapt(source, tiny_space, backend, out, settings, progress=Progress(callback=stop_after_two))
    kept = LatencyTable.read(out).meta.networks()
    assert len(kept) == 2
    events: list[ProgressEvent] = []
    table = adapt(source, tiny_space, backend, out, settings, progress=Progress(callback=events.append))
    assert events[0].done_before == 2 and len([e for e in events if e.what == ADAPT_TASK]) == 2
    assert table.meta.networks()[:2] == kept and table.meta.calibration.networks == 4
    other = source_of(tiny_space, device="another")
    other = LatencyTable(other.meta, other.rows.assign(latency_ms=other.rows["latency_ms"] * 2))
    with pytest.raises(QuadnasError, match="other rows.*--restart"):
        adapt(other, tiny_space, backend, out, settings)


def test_cli_adapts_and_says_how(tiny_space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    source_of(tiny_space).write(tmp_path / "src.csv")
    argv = ["profile", "--adapt", "src", "--space", "tiny", "--networks", "3", "--network-rounds", "1"]
    assert main([*argv, "--round-ms", "2", "--name", "new", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["table"]["provenance"] == "adapted" and doc["adapted_from"]["name"] == "src"
    assert LatencyTable.read(tmp_path / "new.csv").meta.calibration.networks == 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--networks", "1"], "at least 3 whole networks, got --networks 1"),
        (["--networks", "0"], "at least 3 whole networks, got --networks 0"),
        (["--rounds", "3"], "--rounds times op specs"),
        (["--resolution", "32"], "it is for resolution 64, but space 'tiny' deploys at 32"),
        (["--space", "quadranet-t", "--resolution", "64"], "has no row for"),
    ],
)
def test_cli_bad_adaptations_are_one_line(extra, message, tiny_space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    source_of(tiny_space).write(tmp_path / "src.csv")
    space = [] if "--space" in extra else ["--space", "tiny"]
    assert main(["profile", "--adapt", "src", *space, *extra, "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_cli_refuses_a_source_of_another_resolution(tiny_space, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    source_of(tiny_space, resolution=128).write(tmp_path / "src128.csv")
    assert main(["profile", "--adapt", "src128", "--space", "tiny", "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert "it is for resolution 128" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_kit_adapts_a_table(tiny_space, tmp_path, monkeypatch):
    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    source_of(tiny_space).write(tmp_path / "src.csv")
    kit = tmp_path / "kit"
    argv = ["profile", "kit", "--adapt", "src", "--space", "tiny", "--networks", "3", "--network-rounds", "1"]
    assert main([*argv, "--round-ms", "2", "--out", str(kit)]) == 0
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["ops"] == [] and len(manifest["networks"]) == 3 and (kit / manifest["adapt"]["source"]).is_file()
    done = subprocess.run(
        [sys.executable, str(kit / "run.py"), "--backend", "onnxruntime"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    table = import_results(kit / "results.csv")
    assert (
        table.meta.provenance == "adapted"
        and table.meta.adapted is not None
        and table.meta.adapted.source.name == "src"
    )
    assert "kit" in table.meta.method and table.meta.calibration.networks == 3
    assert main(["profile", "import", str(kit / "results.csv"), "--name", "board"]) == 0
    assert LatencyTable.read(tmp_path / "board.csv").meta.provenance == "adapted"
