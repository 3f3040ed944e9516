"""LiteRT: .tflite files from litert-torch, the litert profiling backend, its kit (run.py with only numpy and
ai-edge-litert; the Android benchmark_model script) and `export --format litert`.

These need the litert extra (`pip install -c constraints.txt -e ".[dev,litert]"`), which .ci/run installs in a
venv of its own and runs this file in; the main environment skips them. Converting takes seconds per model,
so the space here is a small one of a few op specs.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from builders import foreign_stderr

from quadnas._export import build_model, export_model, read_sidecar, verify_latency
from quadnas.cli import main
from quadnas.latency.table import LatencyTable
from quadnas.nn.blocks import build_op, init_weights, op_input_shape
from quadnas.space import SearchSpace

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")),
    reason="needs the litert extra (pip install -e '.[litert]'); .ci/run runs these in a venv of their own",
)

SMALL_SPACE = {
    "name": "litert-small",
    "in_channels": 3,
    "resolution": 32,
    "num_classes": 10,
    "stem_patch": 4,
    "stages": [{"dim": 8, "depth": 1}, {"dim": 16, "depth": 1}],
    "choices": {"kernel": [3, 5], "expansion": [2], "identity": True},
}
QUICK = ["--rounds", "2", "--round-ms", "2", "--window", "4", "--network-rounds", "2"]


@pytest.fixture(scope="module")
def small_space(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("space") / "litert-small.yaml"
    path.write_text(yaml.safe_dump(SMALL_SPACE))
    return path


@pytest.fixture(scope="module")
def small_table(small_space, tmp_path_factory) -> Path:
    """The small space profiled here on LiteRT with a short schedule."""
    out = tmp_path_factory.mktemp("tables") / "small-litert.csv"
    argv = ["profile", "--backend", "litert", "--space", str(small_space), "--out", str(out), *QUICK]
    assert main([*argv, "--networks", "3"]) == 0  # the space has 9 archs: 6 are left to validate on
    return out


def test_an_op_file_matches_torch_in_channels_last_and_carries_metadata(tmp_path, small_space):
    from ai_edge_litert.interpreter import Interpreter

    from quadnas.nn.litert import read_metadata, write_tflite

    space = SearchSpace.load(small_space)
    spec = next(s for s in space.all_op_specs() if s.op == "quadra_block")
    module = build_op(spec, space.config.stem_patch)
    init_weights(module)
    path = write_tflite(
        module.eval(), op_input_shape(spec), tmp_path / "op.tflite", channels_last_io=True, metadata={"k": "v"}
    )
    x = torch.randn(op_input_shape(spec))
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert list(inp["shape"]) == [1, spec.height, spec.width, spec.cin]  # NHWC, as inside a network
    interpreter.set_tensor(inp["index"], x.permute(0, 2, 3, 1).numpy())
    interpreter.invoke()
    with torch.no_grad():
        expected = module(x).permute(0, 2, 3, 1).numpy()
    assert np.abs(interpreter.get_tensor(out["index"]) - expected).max() < 1e-4
    assert read_metadata(path) == {"k": "v"}


def test_profile_writes_a_litert_table_of_this_host(small_table, small_space):
    table = LatencyTable.read(small_table)
    meta = table.meta
    assert meta.backend == "litert" and meta.provenance == "measured" and meta.precision == "fp32"
    assert meta.measurement is not None and meta.measurement.delegate == "XNNPACK"
    assert meta.host is not None and meta.host_fingerprint
    assert "litert-torch" in meta.method and "channels-last" in meta.method
    assert len(table) == len(SearchSpace.load(small_space).all_op_specs()) and (table.rows["latency_ms"] >= 0).all()
    assert meta.calibration.networks == 3


def test_validate_and_adapt_run_on_litert(small_table, small_space, tmp_path, capsys):
    validate = ["validate", "--table", str(small_table), "--space", str(small_space), "--n", "2", "--json"]
    assert main([*validate, "--network-rounds", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "litert" and report["n"] == 2 and report["host_note"] is None
    adapted = tmp_path / "adapted.csv"
    argv = ["profile", "--adapt", str(small_table), "--backend", "litert", "--networks", "3", "--out", str(adapted)]
    assert main([*argv, "--space", str(small_space), "--network-rounds", "2"]) == 0
    assert LatencyTable.read(adapted).meta.provenance == "adapted"
    assert LatencyTable.read(adapted).meta.measurement.delegate == "XNNPACK"


def test_export_litert_carries_metadata_and_verifies_latency(small_table, small_space, tmp_path, capsys):
    from quadnas.nn.litert import read_metadata

    arch = "k5e2-k3e2"
    out = tmp_path / "m.tflite"
    argv = ["export", "--arch", arch, "--space", str(small_space), "--init", "random", "--out", str(out)]
    assert main([*argv, "--verify-latency", "--device", str(small_table), "--rounds", "3", "--budget", "1s"]) == 0
    text = capsys.readouterr().out
    assert "LiteRT" in text and "parity" in text and "within" in text
    info = read_metadata(out)
    assert info["quadnas_arch"] == arch and info["quadnas_batch"] == "1"
    sidecar = read_sidecar(out)
    assert sidecar["format"] == "litert" and sidecar["parity"]["batches"] == [1, 3]
    assert sidecar["parity"]["max_abs_diff"] <= sidecar["parity"]["tolerance"]
    assert "Interpreter(model_path=" in out.with_name("m.tflite.md").read_text()


def test_int8_litert_export_is_checked_by_accuracy(tiny_checkpoint, tiny_space, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from quadnas.nn.litert import read_metadata

    source = build_model("k3e2-id-k5e4-k7e2-id-k3e4", space=tiny_space, checkpoint=tiny_checkpoint)
    result = export_model(source, "litert", tmp_path / "m.tflite", resolution=32, precision="int8")
    check = result.int8
    assert check is not None and check.calibration_images == 300 and "INT8" in result.runtime
    assert abs(check.fp32_accuracy - check.int8_accuracy) < 0.1  # one epoch on digits: ~0.7 top-1
    interpreter = Interpreter(model_path=str(result.path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert read_metadata(result.path)["quadnas_precision"] == "int8"
    assert read_sidecar(result.path)["parity"]["int8_accuracy"] == check.int8_accuracy
    verified = verify_latency(source, result, backend="litert", rounds=2)
    assert verified.measured_ms > 0 and verified.measured_what == "m.tflite"


def _clean_site(tmp_path: Path) -> Path:
    """A folder holding only numpy and ai_edge_litert (links), for a Python that sees nothing else."""
    import ai_edge_litert

    site = tmp_path / "site"
    site.mkdir()
    for package in (np, ai_edge_litert):
        folder = Path(package.__file__).parent
        (site / folder.name).symlink_to(folder)
        libs = folder.with_name(f"{folder.name}.libs")  # manylinux wheels keep bundled libraries beside the package
        if libs.is_dir():
            (site / libs.name).symlink_to(libs)
    return site


@pytest.fixture(scope="module")
def litert_kit(small_space, tmp_path_factory) -> Path:
    kit = tmp_path_factory.mktemp("kit")
    argv = ["profile", "kit", "--backend", "litert", "--space", str(small_space), "--out", str(kit), *QUICK]
    assert main([*argv, "--networks", "3"]) == 0
    return kit


def test_the_kit_runs_with_only_numpy_and_litert_and_imports(litert_kit, tmp_path):
    site = _clean_site(tmp_path)
    done = subprocess.run(
        [sys.executable, "-S", str(litert_kit / "run.py")],  # -S: no site-packages, so only `site` is importable
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=litert_kit,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((litert_kit / "manifest.json").read_text())
    assert manifest["runtime"] == "litert" and all(o["file"].endswith(".tflite") for o in manifest["ops"])
    out = tmp_path / "kit-table.csv"
    assert main(["profile", "import", str(litert_kit / "results.csv"), "--out", str(out)]) == 0
    table = LatencyTable.read(out)
    assert table.meta.backend == "litert" and table.meta.measurement.delegate == "XNNPACK"
    assert len(table) == len(manifest["ops"]) and table.meta.calibration.networks == 3


FAKE_ADB = """#!/bin/sh
# adb for a test: 'shell' runs the command here, 'push' copies.
case "$1" in
  shell) shift; case "$1" in getprop) echo "fake-$2";; cat) echo "CPU implementer : 0x41"; echo "CPU part : 0xd0b";
    echo "CPU variant : 0x4"; echo "CPU revision : 1"; echo "Features : fp asimd"; echo "CPU architecture: 8";;
    nproc) echo 8;; *) sh -c "$*";; esac;;
  push) cp "$2" "$3";;
esac
"""
FAKE_BENCHMARK_MODEL = """#!/bin/sh
# LiteRT's benchmark_model for a test: the two stat lines it prints (warm-up, then the timed run), with a
# median of 100 us + 1 us per 100 bytes of the model.
for arg in "$@"; do case "$arg" in --graph=*) graph="${arg#--graph=}";; esac; done
us=$(( $(wc -c < "$graph") / 100 + 100 ))
echo "INFO: count=5 first=900 curr=800 min=800 max=900 avg=820 std=30"
echo "INFO: count=50 first=$us curr=$us min=$us max=$((us + 50)) avg=$((us + 5)) std=20" \\
  "p5=$us median=$us p95=$((us + 40))"
"""


def test_the_android_script_runs_over_adb_and_imports(litert_kit, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("adb", FAKE_ADB), ("benchmark_model", FAKE_BENCHMARK_MODEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "BENCHMARK_MODEL": str(bin_dir / "benchmark_model"),
        "DEVICE_DIR": str(tmp_path / "phone"),
        "LITERT_VERSION": "2.3.0",
    }
    done = subprocess.run(
        ["sh", str(litert_kit / "android" / "benchmark.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "phone.csv"
    assert main(["profile", "import", str(litert_kit / "android" / "results"), "--out", str(out)]) == 0
    table = LatencyTable.read(out)
    assert table.meta.backend == "litert" and table.meta.backend_version == "2.3.0 (benchmark_model)"
    assert table.meta.host is not None and "Cortex-A76" in table.meta.host.name and table.meta.host.logical_cores == 8

    def median_ms(file: str) -> float:
        return ((litert_kit / file).stat().st_size // 100 + 100) / 1e3

    assert table.meta.measurement is not None
    assert table.meta.measurement.overhead_ms == pytest.approx(median_ms("overhead.tflite"))
    manifest = json.loads((litert_kit / "manifest.json").read_text())
    measured = {n.arch: n.measured_ms for n in table.meta.networks()}
    assert measured == {n["arch"]: pytest.approx(median_ms(n["file"])) for n in manifest["networks"]}
    rerun = subprocess.run(
        ["sh", str(litert_kit / "android" / "benchmark.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0 and "benchmark_model ops/" not in rerun.stdout  # every log is there: resumed


def test_profile_and_exports_write_nothing_foreign_on_stderr(small_space, tiny_checkpoint, tmp_path):
    """LiteRT's interpreter and converter print native log lines (the XNNPACK delegate's on every interpreter,
    absl's, oneDNN's) and warnings through torch's and the root logger: none reaches a user's stderr."""
    profile = ["profile", "--backend", "litert", "--space", str(small_space), "--out", str(tmp_path / "t.csv")]
    assert foreign_stderr([*profile, *QUICK, "--networks", "3"], tmp_path) == []
    fp32 = ["export", "--arch", "k5e2-k3e2", "--space", str(small_space), "--init", "random"]
    assert foreign_stderr([*fp32, "--out", str(tmp_path / "m.tflite")], tmp_path) == []
    int8 = ["export", "--arch", "k3e2-id-k5e4-k7e2-id-k3e4", "--space", "tiny", "--checkpoint", str(tiny_checkpoint)]
    assert foreign_stderr([*int8, "--precision", "int8", "--out", str(tmp_path / "m8.tflite")], tmp_path) == []
