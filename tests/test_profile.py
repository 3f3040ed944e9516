import numpy as np
import pytest

from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.calibration import fit_calibration
from quadnas.latency.host import Host
from quadnas.latency.measure._profile import NETWORKS_TASK, OPS_TASK, ROUNDS_TASK, ProfileSettings, profile
from quadnas.latency.measure._validate import (
    MEASURE_TASK,
    REFERENCES,
    NetworkFiles,
    ValidationResult,
    compare,
    validate,
)
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.progress import Progress, ProgressEvent

QUICK = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=4, network_rounds=2)


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def measured(tiny_space, tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "tiny-ort.csv"
    return profile(tiny_space, get_backend("onnxruntime"), path, QUICK)


def test_profile_covers_every_op_spec(measured, tiny_space):
    table = LatencyTable.read(measured.path)
    assert not table.missing(tiny_space.all_op_specs()) and len(table) == len(tiny_space.all_op_specs())
    # a tiny op on a busy machine may time below the per-call overhead: its row is then clamped to 0 ms
    assert (table.rows["latency_ms"] >= 0).all() and (table.rows["latency_ms"] > 0).any()
    assert (table.rows["runs"] >= QUICK.rounds).all()
    assert (table.rows["p10_ms"] <= table.rows["latency_ms"]).all()
    assert (table.rows["latency_ms"] <= table.rows["p90_ms"]).all()
    meta = table.meta
    assert meta.provenance == "measured" and meta.backend == "onnxruntime" and meta.threads == 1
    assert meta.space == "tiny" and meta.space_fingerprint == tiny_space.fingerprint() and meta.resolution == 64
    assert (
        meta.precision == "fp32"
        and meta.batch == 1
        and meta.clock == "cpu"
        and meta.measurement
        and meta.measurement.overhead_ms > 0
    )
    assert "overhead" in meta.method and "rounds" in meta.method
    assert meta.calibration.networks == QUICK.networks == len(meta.networks())
    assert meta.calibration.mape_pct is not None and meta.calibration.a > 0
    assert meta.host == Host.current() and meta.host_fingerprint == Host.current().fingerprint
    assert LatencyPredictor(table, tiny_space).predict(tiny_space.largest()) > 0


def test_calibration_networks_are_timed_with_the_ops_not_after_them(tiny_space, tmp_path):
    """A machine whose speed changes mid-profile must shift the rows and the networks of the fit alike."""
    events: list[ProgressEvent] = []
    progress = Progress(callback=events.append)
    profile(tiny_space, get_backend("onnxruntime"), tmp_path / "t.csv", QUICK, progress=progress)
    order = [e.what for e in events if e.what in (OPS_TASK, NETWORKS_TASK)]
    assert order.count(NETWORKS_TASK) == QUICK.networks
    models = len(tiny_space.all_op_specs()) + QUICK.networks
    assert [e.done for e in events if e.what == ROUNDS_TASK] == list(range(1, models * QUICK.rounds + 1))
    assert order.index(NETWORKS_TASK) < len(order) - 1 - order[::-1].index(OPS_TASK)


def test_resume_keeps_measured_rows(tiny_space, tmp_path):
    path = tmp_path / "t.csv"
    k = 5

    def stop_after_k(event: ProgressEvent):
        if event.what == OPS_TASK and event.done == k:
            raise Interrupt

    backend = get_backend("onnxruntime")
    with pytest.raises(Interrupt):
        profile(tiny_space, backend, path, QUICK, progress=Progress(callback=stop_after_k))
    first = LatencyTable.read(path).rows
    assert len(first) == k

    events: list[ProgressEvent] = []
    table = profile(tiny_space, backend, path, QUICK, progress=Progress(callback=events.append))
    measured_again = [e.note for e in events if e.what == OPS_TASK]
    assert len(measured_again) == len(tiny_space.all_op_specs()) - k
    first_op = next(e for e in events if e.what == OPS_TASK)
    assert first_op.done_before == k and first_op.total == len(tiny_space.all_op_specs())
    assert not set(measured_again) & set(map(str, LatencyTable(table.meta, first).specs()))
    kept = table.rows.merge(first, on=list(first.columns))
    assert len(kept) == k  # the first k rows are unchanged
    assert table.meta.calibration.networks == QUICK.networks


def test_resume_refuses_other_conditions(measured, tiny_space):
    with pytest.raises(QuadnasError, match="threads 1 \\(now 2\\).*--restart"):
        profile(tiny_space, get_backend("onnxruntime", threads=2), measured.path, QUICK)


def test_resume_refuses_a_table_of_another_host(measured, tiny_space, tmp_path):
    other = Host(name="Imaginary CPU 9000", family="99", model="99", features=("avx2",), logical_cores=10_000)
    table = LatencyTable(
        measured.meta.model_copy(update={"host": other, "host_fingerprint": other.fingerprint}), measured.rows.iloc[:3]
    )
    table.write(tmp_path / "elsewhere.csv")
    with pytest.raises(QuadnasError, match=f"host_fingerprint {other.fingerprint} .*--restart"):
        profile(tiny_space, get_backend("onnxruntime"), tmp_path / "elsewhere.csv", QUICK)


def test_fit_calibration_exact_line():
    x = np.array([10.0, 20, 30, 45, 60])
    c = fit_calibration(x, 1.2 * x + 3)
    assert c.a == pytest.approx(1.2) and c.b_ms == pytest.approx(3)
    assert c.mape_pct == pytest.approx(0, abs=1e-9) and c.networks == 5


def test_fit_calibration_held_out_error_exceeds_fit_error():
    rng = np.random.default_rng(0)
    x = np.linspace(10, 100, 12)
    y = 0.9 * x + 2 + rng.normal(0, 2, len(x))
    c = fit_calibration(x, y)
    in_sample = np.mean(np.abs(c.a * x + c.b_ms - y) / y) * 100
    assert c.mape_pct > in_sample > 0 and c.max_err_pct >= c.mape_pct


def test_fit_calibration_degenerate_cases():
    few = fit_calibration([10.0, 20.0], [12.0, 22.0])
    assert few.mape_pct is None and few.a == pytest.approx(1.0) and few.b_ms == pytest.approx(2.0)
    same = fit_calibration([10.0, 10.0, 10.0], [11.0, 12.0, 13.0])
    assert same.a == pytest.approx(1.2) and same.b_ms == 0.0
    noisy = fit_calibration([1.0, 10.0, 20.0, 30.0], [0.5, 12.0, 25.0, 36.0])  # least squares: b < 0
    assert noisy.b_ms == 0.0 and noisy.a == pytest.approx(73.5 / 61.0)
    assert noisy.a * 0.01 + noisy.b_ms > 0  # a tiny arch is never predicted at 0 ms or less


def test_compare_figures():
    figures = compare(np.array([10.0, 20, 30, 40]), np.array([10.4, 21.5, 30.0, 36.0]))
    assert figures["max_err_pct"] == pytest.approx(10)
    assert figures["within_5_pct"] == 50 and figures["within_10_pct"] == 100 and figures["kendall_tau"] == 1


def test_validate_returns_sane_figures(measured):
    result = validate(measured, n=4, settings=QUICK)
    assert result.n == 4 == len(result.measured_ms) == len(set(result.archs))
    assert all(m > 0 for m in result.measured_ms) and all(p > 0 for p in result.predicted_ms)
    assert 0 <= result.within_5_pct <= result.within_10_pct <= 100 and -1 <= result.kendall_tau <= 1
    assert result.max_err_pct >= result.mape_pct >= 0
    calibration = {p.arch for p in measured.meta.networks()}
    assert not calibration & set(result.archs)
    assert result.host_note is None  # measured here
    # measured twice: the second measurement against the first, in the prediction's own figures
    assert result.repeat_ms is not None and len(result.repeat_ms) == 4 and all(m > 0 for m in result.repeat_ms)
    first, second = np.array(result.measured_ms), np.array(result.repeat_ms)
    again = compare(first, second)  # from the lists, rounded to 1e-4 ms: each error moves by at most `slack` points
    slack = float(100 * np.max(5e-5 / first + 5e-5 * second / first**2)) + 1e-6
    for key in ("mape_pct", "max_err_pct"):
        assert result.repeat[key] == pytest.approx(again[key], abs=slack)
    assert "repeat error" in (result.floor_note() or "")


def test_validate_times_calibration_networks_again_for_the_machine_speed(measured):
    result = validate(measured, n=3, settings=QUICK, repeat=False)
    profiled = {p.arch: p.measured_ms for p in measured.meta.networks()}
    assert 2 <= len(result.reference_archs) <= REFERENCES and set(result.reference_archs) <= set(profiled)
    assert not set(result.reference_archs) & set(result.archs)  # timed beside the held-out ones, not among them
    assert result.reference_profiled_ms == pytest.approx([profiled[a] for a in result.reference_archs], abs=1e-4)
    assert result.reference_profiled_ms == sorted(result.reference_profiled_ms)  # fastest to slowest
    ratios = np.array(result.reference_ms) / np.array(result.reference_profiled_ms)
    assert result.speed_ratio == pytest.approx(float(np.median(ratios)), rel=1e-3)
    scaled = compare(np.array(result.measured_ms), np.array(result.predicted_ms) * result.speed_ratio)
    assert result.at_speed is not None and result.at_speed["mape_pct"] == pytest.approx(scaled["mape_pct"], abs=0.05)
    assert f"{result.speed_ratio:.2f}x" in (result.speed_note() or "")


def test_validate_on_another_clock_has_no_speed_ratio(measured):
    """Profiled times are on the table's clock: against another clock they say nothing of the machine's speed."""
    result = validate(measured, n=2, settings=QUICK, repeat=False, clock="wall")
    assert result.speed_ratio is None and result.reference_archs == [] and result.speed_note() is None


@pytest.mark.parametrize(("now", "verdict"), [(10.3, "as fast as when"), (13.7, "another speed")])
def test_speed_note_tells_a_machine_in_another_state(now, verdict):
    at_speed = {"mape_pct": 1.5, "max_err_pct": 3.0, "within_5_pct": 100.0, "within_10_pct": 100.0}
    result = ValidationResult(
        "t", "onnxruntime", "cpu", "fp32", 2, 30.0, 40.0, 0, 0, 1.0,
        reference_archs=["a", "b"], reference_profiled_ms=[10.0, 20.0], reference_ms=[now, 2 * now],
        speed_ratio=now / 10, at_speed=at_speed,
    )  # fmt: skip
    note = result.speed_note() or ""
    assert verdict in note and f"{now / 10:.2f}x" in note
    assert ("1.50%" in note) == (verdict == "another speed")  # the error at this speed, where it differs


def test_validate_without_repeat_measures_once(measured):
    events: list[ProgressEvent] = []
    result = validate(measured, n=2, settings=QUICK, repeat=False, progress=Progress(callback=events.append))
    assert result.repeat is None and result.repeat_ms is None and result.floor_note() is None
    assert {e.what for e in events} == {MEASURE_TASK}


@pytest.mark.parametrize(
    ("mape", "floor", "verdict"),
    [(3.0, 2.5, "as good as this machine lets one tell"), (9.0, 2.0, "the error is the table's")],
)
def test_floor_note_judges_the_error_against_the_repeat(mape, floor, verdict):
    figures = {"mape_pct": floor, "max_err_pct": 2 * floor, "within_5_pct": 80.0, "within_10_pct": 100.0}
    result = ValidationResult("t", "onnxruntime", "wall", "fp32", 2, mape, 2 * mape, 50, 100, 1.0, repeat=figures)
    note = result.floor_note() or ""
    assert f"{mape:.2f}%" in note and f"{floor:.2f}%" in note and verdict in note


def test_validate_against_another_hosts_table_says_so(measured, tmp_path, capsys):
    other = Host(name="Imaginary CPU 9000", family="99", model="99", features=("avx2",), logical_cores=10_000)
    table = LatencyTable(
        measured.meta.model_copy(update={"host": other, "host_fingerprint": other.fingerprint}), measured.rows
    )
    table.write(tmp_path / "elsewhere.csv")
    out = tmp_path / "v.json"
    assert (
        main(
            [
                "validate",
                "--table",
                str(tmp_path / "elsewhere.csv"),
                "--n",
                "2",
                "--network-rounds",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "timed on this host and compared with another host's table" in err and "Imaginary CPU 9000" in err
    import json

    assert "measured on another host" in json.loads(out.read_text())["host_note"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["profile", "--threads", "0"], "threads must be"),
        (["profile", "--threads", "abc"], "threads must be"),
        (["profile", "--backend", "tflite"], "unknown backend"),
        (["profile", "--resolution", "100"], "resolution 100"),
        (["profile", "--name", "a/b"], "may hold only"),
        (["profile"], "name the table"),
    ],
)
def test_profile_cli_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    extra = [] if argv == ["profile"] or "--name" in argv else ["--out", str(tmp_path / "x.csv")]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_validate_cli_needs_the_backend(measured, monkeypatch, tmp_path, capsys):
    other = LatencyTable(measured.meta.model_copy(update={"backend": "openvino"}), measured.rows)
    other.write(tmp_path / "ov.csv")
    monkeypatch.setitem(__import__("sys").modules, "openvino", None)
    assert main(["validate", "--table", str(tmp_path / "ov.csv"), "--n", "2"]) == 2
    assert "needs the openvino package" in capsys.readouterr().err  # the hint itself: test_backends


def test_validate_cli_refuses_estimated_tables(measured, tmp_path, capsys):
    estimated = LatencyTable(
        measured.meta.model_copy(update={"provenance": "estimated", "backend": "tflite"}), measured.rows
    )
    estimated.write(tmp_path / "est.csv")
    assert main(["validate", "--table", str(tmp_path / "est.csv")]) == 2
    assert "cannot run here" in capsys.readouterr().err


def test_validate_cli_writes_json(measured, tmp_path):
    out = tmp_path / "v.json"
    assert (
        main(["validate", "--table", str(measured.path), "--n", "2", "--network-rounds", "1", "--json", str(out)]) == 0
    )
    import json

    figures = json.loads(out.read_text())
    assert figures["n"] == 2 and figures["backend"] == "onnxruntime"
    assert len(figures["repeat_ms"]) == 2 and set(figures["repeat"]) >= {"mape_pct", "within_5_pct"}


def test_validate_cli_prints_the_noise_floor_beside_the_error(measured, capsys):
    argv = ["validate", "--table", str(measured.path), "--n", "2", "--network-rounds", "1"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "prediction" in out and "│ repeat" in out and "repeat error of" in out
    assert "│ scaled" in out and "calibration networks ran at" in out  # the machine's speed against the profile's
    assert main([*argv, "--no-repeat"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "prediction" in out and "repeat" not in out


def test_table_records_the_runtime_settings_and_refuses_others(measured, tiny_space):
    """The sessions' settings go into the header; a table timed under other settings is not resumed."""
    assert measured.meta.measurement and measured.meta.measurement.runtime_config == {
        "intra_op_num_threads": "1",
        "inter_op_num_threads": "1",
        "execution_mode": "sequential",
    }
    measurement = measured.meta.measurement.model_copy(update={"runtime_config": {"spinning": "yes"}})
    table = LatencyTable(measured.meta.model_copy(update={"measurement": measurement}), measured.rows)
    table.write(measured.path.with_name("other-settings.csv"))
    with pytest.raises(QuadnasError, match="runtime_config .*--restart"):
        profile(tiny_space, get_backend("onnxruntime"), measured.path.with_name("other-settings.csv"), QUICK)


def test_torch_table_records_the_input_layout_and_refuses_an_old_one(tiny_space, tmp_path):
    """Torch tables say which layout their ops were timed on; one without it (timed NCHW) is not resumed."""
    path = tmp_path / "torch.csv"
    settings = ProfileSettings(rounds=1, round_ms=1, window=4, warmup_ms=1, networks=2, network_rounds=1)
    table = profile(tiny_space, get_backend("torch"), path, settings)
    assert table.meta.measurement and table.meta.measurement.input_layout == "channels-last after the stem"
    assert "channels-last" in table.meta.method
    old = LatencyTable.read(path)
    old.meta = old.meta.model_copy(
        update={"measurement": old.meta.measurement.model_copy(update={"input_layout": None})}
    )
    old.write(path)
    with pytest.raises(QuadnasError, match="input_layout None .*--restart"):
        profile(tiny_space, get_backend("torch"), path, settings)


def test_network_files_are_exported_once_and_kept_only_where_asked(tiny_space, tmp_path):
    backend = get_backend("onnxruntime")
    arch = tiny_space.smallest()
    with NetworkFiles(tiny_space) as temporary:
        assert temporary.open(backend, arch).time(1)[0] > 0
        path = temporary.path(backend, arch)
        temporary.open(backend, arch)
        assert temporary.path(backend, arch) == path and path.exists()
    assert not path.exists()  # temporary files go with the block
    with NetworkFiles(tiny_space, keep_in=tmp_path) as kept:
        path = kept.path(backend, arch)
    assert path == tmp_path / "onnx-fp32" / f"{arch}.onnx" and path.exists()
    written = path.stat().st_mtime_ns
    assert NetworkFiles(tiny_space, keep_in=tmp_path).path(backend, arch) == path  # found, not written again
    assert path.stat().st_mtime_ns == written
