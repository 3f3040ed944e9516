import json
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.host import Host
from quadnas.latency.measure._profile import ProfileSettings
from quadnas.latency.measure.kit import import_results, write_kit
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.portable.results import read_header
from quadnas.portable.sessions import runtime_config

QUICK = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=3, network_rounds=2)


def run_kit(kit, *args):
    """The runner as a user runs it on the device: a plain python process in the kit.

    The timeout only bounds a hang: a loaded machine 3-4x slower than ours needs minutes."""
    return subprocess.run(
        [sys.executable, str(kit / "run.py"), "--backend", "onnxruntime", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=kit,
    )


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit")
    assert (
        main(
            [
                "profile",
                "kit",
                "--out",
                str(out),
                "--space",
                "tiny",
                "--rounds",
                "2",
                "--round-ms",
                "2",
                "--window",
                "4",
                "--calibration-nets",
                "3",
                "--network-rounds",
                "2",
            ]
        )
        == 0
    )
    done = run_kit(out)
    assert done.returncode == 0, done.stderr
    # results come only when the models' last rounds end: the way there is shown in rounds
    assert "op and network rounds: " in done.stdout and done.stdout.count(" rounds: ") >= 10
    return out


def test_kit_contents(kit, tiny_space):
    manifest = json.loads((kit / "manifest.json").read_text())
    assert manifest["fingerprint"] == tiny_space.fingerprint()
    assert len(manifest["ops"]) == len(tiny_space.all_op_specs()) and len(manifest["networks"]) == 3
    assert all((kit / entry["file"]).is_file() for entry in manifest["ops"] + manifest["networks"])
    assert {n["arch"] for n in manifest["networks"]} <= {str(a) for a in _archs(tiny_space, manifest)}
    assert zipfile.is_zipfile(kit / "run.py")  # the portable core as one file (test_portable.py)


def _archs(space, manifest):
    return [space.parse(n["arch"]) for n in manifest["networks"]]


def test_runner_writes_every_measurement(kit):
    text = (kit / "results.csv").read_text()
    header = read_header(text)
    assert header["backend"] == "onnxruntime" and header["threads"] == "1" and header["precision"] == "fp32"
    host = Host.model_validate_json(header["host"])
    assert host == Host.current() and header["host_fingerprint"] == host.fingerprint
    assert json.loads(header["runtime_config"]) == runtime_config("onnxruntime", 1)
    rows = [line for line in text.splitlines() if not line.startswith("#")][1:]
    manifest = json.loads((kit / "manifest.json").read_text())
    assert len(rows) == 1 + len(manifest["ops"]) + len(manifest["networks"])
    # calibration networks are timed in the ops' rounds, not after them (rows are written as each finishes)
    kinds = [row.split(",")[0] for row in rows]
    assert kinds.index("network") < max(i for i, kind in enumerate(kinds) if kind == "op")


def test_runner_resumes(kit):
    before = (kit / "results.csv").read_text()
    again = run_kit(kit)
    assert again.returncode == 0 and (kit / "results.csv").read_text() == before
    assert "ms (p10" not in again.stdout  # nothing measured twice


def test_runner_refuses_other_settings(kit):
    other = run_kit(kit, "--threads", "2")
    assert other.returncode == 2 and "threads=1" in other.stderr


def test_runner_refuses_to_resume_another_hosts_results(kit, tmp_path):
    text = (kit / "results.csv").read_text()
    fingerprint = read_header(text)["host_fingerprint"]
    elsewhere = tmp_path / "results.csv"
    elsewhere.write_text(text.replace(f"# host_fingerprint: {fingerprint}", "# host_fingerprint: 0123456789ab"))
    other = run_kit(kit, "--out", str(elsewhere))
    assert other.returncode == 2 and "host_fingerprint=0123456789ab" in other.stderr


def test_import_round_trip(kit, tiny_space, tmp_path, monkeypatch):
    table = import_results(kit / "results.csv")
    assert not table.missing(tiny_space.all_op_specs())
    assert table.meta.provenance == "measured" and table.meta.backend == "onnxruntime"
    assert table.meta.calibration.networks == 3 and "kit" in table.meta.method
    assert table.meta.threads == 1  # the runner's header holds text
    assert table.meta.measurement is not None  # how the device ran them:
    assert table.meta.measurement.runtime_config == runtime_config("onnxruntime", 1)
    assert LatencyPredictor(table, tiny_space).predict(tiny_space.largest()) > 0

    monkeypatch.setenv("QUADNAS_TABLES", str(tmp_path))
    assert main(["profile", "import", str(kit / "results.csv"), "--name", "remote"]) == 0
    written = LatencyTable.read(tmp_path / "remote.csv")
    pd.testing.assert_frame_equal(written.rows, table.rows, rtol=1e-5)  # the file keeps 6 digits


def test_import_json_is_one_document(kit, tiny_space, tmp_path, capsys):
    """`profile import --json` (here, to reuse the kit; the other commands' --json: test_cli_json.py)."""
    out = tmp_path / "remote.csv"
    assert main(["profile", "import", str(kit / "results.csv"), "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc)[0] == "schema" and doc["schema"] == "quadnas.profile-import/1"
    assert doc["table"]["path"] == str(out) and doc["op_specs"] == len(tiny_space.all_op_specs())
    assert doc["table"]["calibration"]["networks"] == 3 and doc["target"] == "CPU" and doc["host_fingerprint"]


def test_import_takes_the_host_the_kit_measured_on_not_this_one(kit, tmp_path):
    device = Host(
        name="ARM Cortex-A76",
        vendor="ARM",
        family="8",
        model="0xd0b",
        stepping="r4p1",
        features=("asimd", "asimddp"),
        logical_cores=8,
        os="Linux 5.10",
        machine="aarch64",
    )
    lines = (kit / "results.csv").read_text().splitlines()
    results = tmp_path / "results.csv"
    results.write_text(
        "\n".join(f"# host: {device.model_dump_json()}" if line.startswith("# host:") else line for line in lines)
        + "\n"
    )
    table = import_results(results, kit)
    assert table.meta.host == device and table.meta.host_fingerprint == device.fingerprint


def test_import_of_results_without_a_host_records_none(kit, tmp_path):
    lines = (kit / "results.csv").read_text().splitlines()
    results = tmp_path / "results.csv"
    results.write_text("\n".join(line for line in lines if not line.startswith("# host")) + "\n")
    table = import_results(results, kit)
    assert table.meta.host is None and table.meta.host_fingerprint is None
    assert "# host" not in table.to_text()


def test_import_of_a_mangled_host_line_is_one_line(kit, tmp_path):
    lines = (kit / "results.csv").read_text().splitlines()
    results = tmp_path / "results.csv"
    results.write_text("\n".join("# host: {oops" if line.startswith("# host:") else line for line in lines) + "\n")
    with pytest.raises(QuadnasError, match="'host' header line is not a host record"):
        import_results(results, kit)


def test_import_of_a_mangled_thread_count_is_one_line(kit, tmp_path):
    lines = (kit / "results.csv").read_text().splitlines()
    results = tmp_path / "results.csv"
    results.write_text("\n".join("# threads: two" if line.startswith("# threads:") else line for line in lines) + "\n")
    with pytest.raises(QuadnasError, match="'threads' header line is 'two', not a thread count"):
        import_results(results, kit)


def test_import_of_partial_results_says_how_to_finish(kit, tmp_path):
    lines = (kit / "results.csv").read_text().splitlines()
    partial = tmp_path / "results.csv"
    partial.write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(QuadnasError, match="lacks 2 of .*rerun `python run.py`"):
        import_results(partial, kit)


def test_kit_refuses_a_foreign_directory(tiny_space, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(QuadnasError, match="not a kit"):
        write_kit(tmp_path, tiny_space, QUICK)
