"""What a runtime does with an exported file: the card and sidecar say how it was run (OpenVINO in float32,
not the CPU plugin's bf16 default) and give a `benchmark_app` command that runs it."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quadnas._export.formats import OPENVINO_CPU_CONFIG
from quadnas._export.sidecar import read_sidecar
from quadnas.cli import main

pytest.importorskip("openvino")
ARCH = "k3e2-id-k5e4-k7e2-id-k3e4"  # an arch of the tiny space
EXPORT = ("export", "--arch", ARCH, "--space", "tiny", "--init", "random")


def _benchmark_app() -> str | None:
    """The `benchmark_app` of the openvino package in this environment (its wheel ships one), else PATH's."""
    beside = Path(sys.executable).with_name("benchmark_app")
    return str(beside) if beside.exists() else shutil.which("benchmark_app")


def _card_commands(card: Path) -> list[str]:
    """The shell commands of the card's ```sh blocks."""
    blocks = re.findall(r"```sh\n(.*?)```", card.read_text(), flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("suffix", ["xml", "onnx"])
def test_card_and_sidecar_say_how_the_file_was_run(suffix, tmp_path):
    out = tmp_path / f"m.{suffix}"
    assert main([*EXPORT, "--out", str(out)]) == 0
    card, sidecar = (tmp_path / f"m.{suffix}.md").read_text(), read_sidecar(out)
    assert '"INFERENCE_PRECISION_HINT": "f32"' in card
    assert sidecar["reproduce"]["openvino_compile"] == {"device": "CPU", "config": OPENVINO_CPU_CONFIG}
    (command,) = _card_commands(tmp_path / f"m.{suffix}.md")
    assert command == sidecar["reproduce"]["benchmark_app"]
    assert '-shape "[1,3,64,64]"' in command and "-infer_precision f32" in command
    if suffix == "xml":
        assert "f32 inference" in sidecar["parity"]["runtime"]  # what the check ran in, read back from OpenVINO


def test_the_ir_runs_in_float32_as_checked(tmp_path):
    """Compiled as the card says, the IR infers in f32 on any CPU, and its logits are what parity checked."""
    import openvino as ov

    out = tmp_path / "m.xml"
    assert main([*EXPORT, "--out", str(out)]) == 0
    compiled = ov.Core().compile_model(str(out), "CPU", OPENVINO_CPU_CONFIG)
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    onnx_out = tmp_path / "m.onnx"
    assert main([*EXPORT, "--out", str(onnx_out)]) == 0
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    session = ort.InferenceSession(str(onnx_out), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    assert np.abs(compiled(x)[0] - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suffix", "options"),
    [("xml", ()), ("xml", ("--static-batch", "4"))],
    ids=["ir", "ir-static"],
)
def test_benchmark_app_runs_the_export_with_the_command_its_card_prints(suffix, options, tmp_path):
    tool = _benchmark_app()
    if tool is None:
        pytest.skip("benchmark_app is not installed (the openvino wheel ships it: pip install 'quadnas[openvino]')")
    assert main([*EXPORT, "--out", str(tmp_path / f"m.{suffix}"), *options]) == 0
    for command in _card_commands(tmp_path / f"m.{suffix}.md"):
        argv = shlex.split(command)
        assert argv[0] == "benchmark_app"
        done = subprocess.run([tool, *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert re.search(r"Median:\s+[0-9.]+ (ms|us)", done.stdout), done.stdout[-2000:]


@pytest.mark.parametrize("suffix", ["xml", "onnx"])
def test_static_batch_fixes_the_files_batch(suffix, tmp_path):
    """--static-batch 2: the file's input and output say 2, it runs at 2 as PyTorch does (parity at 2), and the
    sidecar, the metadata inside and the card say so."""
    out = tmp_path / f"m.{suffix}"
    assert main([*EXPORT, "--out", str(out), "--static-batch", "2"]) == 0
    sidecar, card = read_sidecar(out), (tmp_path / f"m.{suffix}.md").read_text()
    assert sidecar["input"]["shape"] == [2, 3, 64, 64] and sidecar["output"]["shape"] == [2, 10]
    assert sidecar["parity"]["batches"] == [2]
    assert "the batch is fixed at 2" in card
    if suffix == "onnx":
        import onnx

        graph = onnx.load(str(out)).graph
        assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [2, 3, 64, 64]
        assert graph.output[0].type.tensor_type.shape.dim[0].dim_value == 2
        assert (
            '"shape": [2, 3, 64, 64]' in {p.key: p.value for p in onnx.load(str(out)).metadata_props}["quadnas_input"]
        )
    else:
        import openvino as ov

        model = ov.Core().read_model(str(out))
        assert model.inputs[0].get_partial_shape().is_static
        assert list(model.inputs[0].get_shape()) == [2, 3, 64, 64]


def test_static_batch_of_an_int8_file(tmp_path, tiny_checkpoint):
    """INT8 with --static-batch: quantized as usual, then fixed; its accuracy check still reported."""
    out = tmp_path / "m.onnx"
    argv = ["export", "--arch", ARCH, "--space", "tiny", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]
    assert main([*argv, "--precision", "int8", "--static-batch", "3"]) == 0
    import onnx

    assert onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 3
    assert "int8_accuracy" in read_sidecar(out)["parity"]


def test_static_batch_is_for_onnx_and_openvino(tmp_path, capsys):
    assert main([*EXPORT, "--out", str(tmp_path / "m.pt"), "--static-batch", "2"]) == 2
    assert "--static-batch fixes the batch of ONNX and OpenVINO files" in capsys.readouterr().err


def test_the_card_times_the_file_as_each_measured_openvino_cpu_table_was_timed(tmp_path, tiny_space):
    """One benchmark_app command per OpenVINO table measured on the CPU plugin, with that table's threads; none
    for estimated, other-device or other-runtime tables."""
    from quadnas._export import build_model, export_model
    from quadnas._export.card import TablePrediction, render_model_card

    source = build_model(ARCH, space=tiny_space, init="random")
    result = export_model(source, "openvino", tmp_path / "m.xml")

    def table(name: str, backend: str, provenance: str, threads: int | None, target: str | None) -> TablePrediction:
        return TablePrediction(name, "d", (), "r", provenance, 1.0, "unknown", "", backend, threads, target)

    predictions = [
        table("cpu-2t", "openvino", "measured", 2, "CPU"),
        table("vpu", "openvino", "estimated", None, "MYRIAD"),
        table("measured-vpu", "openvino", "measured", None, "MYRIAD"),
        table("ort", "onnxruntime", "measured", 1, "cpu"),
    ]
    card = tmp_path / "card.md"
    card.write_text(render_model_card(source, result, predictions=predictions))
    assert _card_commands(card) == [
        'benchmark_app -m m.xml -d CPU -shape "[1,3,64,64]" -hint latency -infer_precision f32 -t 10 -nthreads 2'
    ]
    assert "# as table cpu-2t was timed" in card.read_text()
