"""INT8 latency tables: profiling quantized op modules, the kit, and never mixing INT8 with float
between a table, a search and an export (issue 15). No timing assertions: the machine may be slow."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import yaml
from builders import tiny_search_config

from quadnas._export import build_model
from quadnas._export.formats import ExportResult, FileOptions
from quadnas._export.run import export_precision
from quadnas._export.verify import verify_latency
from quadnas._search.config import DeviceBudget
from quadnas._search.run import search
from quadnas._search.targets import Targets
from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.measure._profile import ProfileSettings, profile
from quadnas.latency.measure._validate import validate
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.measure.builders import op_module
from quadnas.latency.measure.kit import import_results, write_kit
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.nn.blocks import op_input_shape
from quadnas.nn.quantize import check_calibration
from quadnas.portable.results import read_header
from quadnas.portable.sessions import openvino_core

QUICK = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=4, network_rounds=2)
OPENVINO = importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None


def quantized_ops(path):
    """The quantizing node types in a model file: QuantizeLinear/DequantizeLinear of an ONNX file,
    FakeQuantize of an OpenVINO IR; empty for a float model."""
    if path.suffix == ".onnx":
        import onnx

        return {node.op_type for node in onnx.load(str(path)).graph.node} & {"QuantizeLinear", "DequantizeLinear"}
    return {op.get_type_name() for op in openvino_core().read_model(str(path)).get_ops()} & {"FakeQuantize"}


@pytest.fixture(scope="module")
def int8_table(tiny_space, tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "tiny-ort-int8.csv"
    return profile(tiny_space, get_backend("onnxruntime", precision="int8"), path, QUICK)


@pytest.fixture(scope="module")
def fp32_copy(int8_table, tmp_path_factory):
    """The INT8 table's rows under a float header: a stand-in for an FP32 table of the same space."""
    table = LatencyTable(int8_table.meta.model_copy(update={"precision": "fp32"}), int8_table.rows)
    return table.write(tmp_path_factory.mktemp("tables") / "tiny-fp32.csv")


def test_int8_profile_covers_every_op_spec_and_says_how(int8_table, tiny_space):
    table = LatencyTable.read(int8_table.path)
    assert table.meta.precision == "int8" and table.meta.backend == "onnxruntime"
    assert not table.missing(tiny_space.all_op_specs()) and len(table) == len(tiny_space.all_op_specs())
    assert "quantized to INT8" in table.meta.method and "QDQ" in table.meta.method
    assert table.meta.calibration.networks == QUICK.networks
    assert "# precision: int8" in int8_table.path.read_text().splitlines()


@pytest.mark.parametrize(
    "backend, quantizing",
    [("onnxruntime", {"QuantizeLinear", "DequantizeLinear"})] + ([("openvino", {"FakeQuantize"})] if OPENVINO else []),
)
def test_int8_backends_time_quantized_graphs(backend, quantizing, tiny_space):
    spec = next(s for s in tiny_space.all_op_specs() if s.op == "quadra_block")
    module, shape = op_module(spec, tiny_space), op_input_shape(spec)
    int8 = get_backend(backend, precision="int8")
    assert quantized_ops(int8.write_model(module, shape)) == quantizing
    assert quantized_ops(get_backend(backend).write_model(module, shape)) == set()  # FP32 tables: float graphs
    session = int8.prepare(module, shape)
    assert len(session.time(2)) == 2 and int8.describe()["precision"] == "int8"


def test_int8_profile_resumes_and_refuses_fp32(int8_table, tiny_space):
    before = LatencyTable.read(int8_table.path).rows
    again = profile(tiny_space, get_backend("onnxruntime", precision="int8"), int8_table.path, QUICK)
    assert again.rows.equals(before)  # every row kept, nothing re-measured
    with pytest.raises(QuadnasError, match="precision int8 \\(now fp32\\)"):
        profile(tiny_space, get_backend("onnxruntime"), int8_table.path, QUICK)


@pytest.mark.parametrize(
    "backend", ["onnxruntime", pytest.param("openvino", marks=pytest.mark.slow)] if OPENVINO else ["onnxruntime"]
)
def test_int8_profile_json_is_all_stdout_holds(backend, tmp_path):
    """The quantizers' notes and progress bars (NNCF draws on stdout) stay out of the JSON document."""
    space = tmp_path / "micro.yaml"  # 5 op specs: what is checked is stdout, not coverage
    space.write_text(
        "name: micro\nin_channels: 3\nresolution: 32\nnum_classes: 10\nstem_patch: 4\n"
        "stages: [{dim: 8, depth: 1}, {dim: 16, depth: 1}]\n"
        "choices: {kernel: [3], expansion: [2], identity: false}\n"
    )
    schedule = ["--rounds", "1", "--round-ms", "1", "--window", "4", "--networks", "2", "--network-rounds", "1"]
    argv = ["profile", "--backend", backend, "--precision", "int8", "--space", str(space), *schedule, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "quadnas", *argv, "--out", str(tmp_path / "t.csv")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["table"]["precision"] == "int8" and document["op_specs"] == 5


@pytest.mark.parametrize(
    "backend, precision, message",
    [
        ("onnxruntime", "int4", "use fp32 or int8"),
        ("openvino", "fp16", "FP16 is not profiled"),
        ("torch", "int8", "use --backend onnxruntime or --backend openvino or --backend litert"),
    ],
)
def test_bad_precisions_are_one_line_errors(backend, precision, message, tmp_path, capsys):
    argv = ["profile", "--backend", backend, "--precision", precision, "--space", "tiny"]
    assert main([*argv, "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_calibration_sets_are_checked():
    with pytest.raises(QuadnasError, match="needs calibration inputs"):
        check_calibration([], (1, 3, 8, 8), "a model")
    with pytest.raises(QuadnasError, match=r"shape \(1, 3, 4, 4\), the model takes \(1, 3, 8, 8\)"):
        check_calibration([np.zeros((1, 3, 4, 4), np.float32)], (1, 3, 8, 8), "a model")


def test_int8_kit_runs_only_on_its_runtime_and_imports_as_int8(tiny_space, tmp_path):
    kit = tmp_path / "kit"
    settings = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=3, network_rounds=2)
    with pytest.raises(QuadnasError, match="add --backend onnxruntime, openvino or litert"):
        write_kit(kit, tiny_space, settings, precision="int8")
    manifest = json.loads(write_kit(kit, tiny_space, settings, precision="int8", backend="onnxruntime").read_text())
    assert manifest["precision"] == "int8" and manifest["quantized_for"] == "onnxruntime"
    assert quantized_ops(kit / manifest["ops"][0]["file"]) == {"QuantizeLinear", "DequantizeLinear"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(kit / "run.py"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=kit)

    refused = run("--backend", "openvino")
    assert refused.returncode == 2 and "run it with --backend onnxruntime" in refused.stderr
    done = run()  # the kit's own runtime by default
    assert done.returncode == 0, done.stderr
    assert read_header((kit / "results.csv").read_text())["precision"] == "int8"
    table = import_results(kit / "results.csv")
    assert table.meta.precision == "int8" and "QDQ" in table.meta.method
    assert not table.missing(tiny_space.all_op_specs())

    write_kit(kit, tiny_space, settings)  # the same folder rewritten as an FP32 kit: its INT8 results are stale
    stale = run("--backend", "onnxruntime")
    assert stale.returncode == 2 and "kit_precision=int8" in stale.stderr
    with pytest.raises(QuadnasError, match="measured on int8 models, but the kit in .* holds fp32 ones"):
        import_results(kit / "results.csv")


def test_the_predictor_refuses_to_mix(int8_table, fp32_copy, tiny_space):
    assert LatencyPredictor(int8_table, tiny_space, "int8").predict(tiny_space.largest()) > 0
    with pytest.raises(QuadnasError, match="is int8 but the export is fp32: pass --precision int8 or use an fp32"):
        LatencyPredictor(int8_table, tiny_space, "fp32")
    with pytest.raises(QuadnasError, match="is fp32 but the export is int8: pass --precision fp32 or use an int8"):
        LatencyPredictor(LatencyTable.read(fp32_copy), tiny_space, "int8")
    LatencyPredictor(LatencyTable.read(fp32_copy), tiny_space, "fp16")  # FP16 weights run as FP32 here


def test_validate_refuses_to_mix(int8_table, capsys):
    with pytest.raises(QuadnasError, match="is int8 but --precision is fp32"):
        validate(int8_table, n=2, precision="fp32")
    assert main(["validate", "--table", str(int8_table.path), "--precision", "fp32"]) == 2
    assert "is int8 but --precision is fp32" in capsys.readouterr().err


def test_validate_times_int8_networks(int8_table):
    result = validate(int8_table, n=2, settings=ProfileSettings(network_rounds=1, round_ms=2, warmup_ms=5))
    assert result.precision == "int8" and result.n == 2


def test_verify_latency_refuses_to_mix(int8_table, fp32_copy, tiny_space, tmp_path, capsys):
    arch = str(tiny_space.largest())
    source = build_model(arch, space="tiny", init="random")
    fake = tmp_path / "m.onnx"
    result = ExportResult(
        format="onnx",
        path=fake,
        files=[],
        sidecar=fake,
        resolution=64,
        input_shape=(1, 3, 64, 64),
        runtime="-",
        parity={},
        options=FileOptions(precision="fp32"),
    )
    with pytest.raises(QuadnasError, match="is int8 but the export is fp32"):
        verify_latency(source, result, device=str(int8_table.path))
    # the command line refuses before it writes anything
    argv = ["export", "--arch", arch, "--space", "tiny", "--init", "random", "--out", str(fake)]
    assert main([*argv, "--verify-latency", "--device", str(int8_table.path)]) == 2
    assert "is int8 but the export is fp32: pass --precision int8" in capsys.readouterr().err
    assert not fake.exists()
    assert main([*argv, "--precision", "int8", "--verify-latency", "--device", str(fp32_copy)]) == 2
    assert "is fp32 but the export is int8" in capsys.readouterr().err


def test_a_search_takes_one_precision(int8_table, fp32_copy, tiny_space):
    devices = [DeviceBudget(device=str(p), budget=Budget.parse("10ms")) for p in (int8_table.path, fp32_copy)]
    with pytest.raises(QuadnasError, match=r"\(int8\) and tiny-fp32 \(fp32\) predict networks of different"):
        Targets.load(devices, tiny_space)
    assert Targets.load(devices[:1], tiny_space).precision == "int8"
    assert Targets.load(devices[1:], tiny_space).precision == "fp32"


def test_export_precision_defaults_to_the_search():
    assert export_precision("int8", None, "onnx") == ("int8", None)
    assert export_precision("int8", None, "torch") == ("fp32", None)  # a state dict has none
    assert export_precision(None, None, "openvino") == ("fp32", None)
    assert export_precision("fp32", "fp16", "openvino") == ("fp16", None)
    precision, warning = export_precision("int8", "fp32", "onnx")
    assert precision == "fp32" and warning is not None and "drop --precision to export int8" in warning


@pytest.mark.slow
def test_best_yaml_records_int8_and_export_defaults_to_it(
    int8_table, synthetic_table, tiny_checkpoint, budget, tiny_space, tmp_path
):
    int8_synthetic = LatencyTable.read(synthetic_table)
    int8_synthetic.meta = int8_synthetic.meta.model_copy(update={"precision": "int8"})
    table = int8_synthetic.write(tmp_path / "synthetic-int8.csv")
    result = search(tiny_search_config(tmp_path / "runs", table, tiny_checkpoint, budget))  # 12 trials: one fits
    best = result.run_dir / "best.yaml"
    record = yaml.safe_load(best.read_text())
    assert record["precision"] == "int8" and record["devices"][0]["table"]["precision"] == "int8"
    out = tmp_path / "model.onnx"
    assert main(["export", str(best), "--out", str(out), "--json"]) == 0  # no --precision: the search's
    assert quantized_ops(out) == {"QuantizeLinear", "DequantizeLinear"}
