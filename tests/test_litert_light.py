"""LiteRT's parts that need no LiteRT: benchmark_model's logs, the phone's identity, which runtime a kit runs
on, and the one-line errors without the extra (the rest is in test_litert.py, which needs the litert extra)."""

import sys

import pytest

from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.measure.android import parse_benchmark_log, phone_host
from quadnas.portable import KitError
from quadnas.portable.run import kit_backend

OLD_LOG = """INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds
count=215 first=12231 curr=2106 min=2065 max=12231 avg=2331.42 std=746
Running benchmark for at least 100 iterations and at least 1 seconds
count=459 first=2143 curr=2101 min=2056 max=2656 avg=2177.1 std=124
"""
NEW_LOG = """INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 p5=51629 median=51962 p95=87112
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628
INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
"""


def test_the_timed_run_is_read_in_milliseconds():
    new = parse_benchmark_log(NEW_LOG, "log")
    assert (new.median_ms, new.p10_ms, new.p90_ms, new.runs) == (51.891, 49.62, 68.628, 1000)
    old = parse_benchmark_log(OLD_LOG, "log")  # an older release: no percentiles, so avg, min and max
    assert (old.median_ms, old.p10_ms, old.p90_ms, old.runs) == (2.1771, 2.056, 2.656, 459)


def test_a_log_without_a_timed_run_says_how_to_redo_it():
    with pytest.raises(QuadnasError, match="delete it and rerun android/benchmark.sh"):
        parse_benchmark_log("ERROR: could not open model", "ops/x.tflite.txt")


def test_a_phone_is_named_by_its_soc_and_core():
    cpuinfo = (
        "CPU implementer\t: 0x41\nCPU part\t: 0xd0b\nCPU variant\t: 0x4\nCPU revision\t: 1\n"
        "Features\t: fp asimd asimddp\n"
    )
    host = phone_host(cpuinfo, {"soc": "SM8150", "cores": "8", "android": "14", "product": "Pixel"})
    assert host["name"] == "SM8150 (ARM Cortex-A76)" and host["logical_cores"] == 8 and host["os"] == "Android 14"
    assert host["machine"] == "aarch64" and "asimddp" in host["features"]


def test_a_litert_kit_runs_on_litert_only_and_an_onnx_kit_never_does():
    assert kit_backend({"runtime": "litert"}, None) == "litert"
    with pytest.raises(KitError, match="run it with --backend litert"):
        kit_backend({"runtime": "litert"}, "onnxruntime")
    with pytest.raises(KitError, match="ONNX files"):
        kit_backend({}, "litert")
    assert kit_backend({"runtime": "litert", "quantized_for": "litert", "precision": "int8"}, None) == "litert"


def test_export_to_litert_without_the_extra_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    argv = ["export", "--arch", "k3e2-id-k5e4-k7e2-id-k3e4", "--space", "tiny", "--init", "random"]
    assert main([*argv, "--out", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert "format litert needs the litert_torch package" in err and "pip install 'quadnas[litert]'" in err
    assert "Traceback" not in err and not (tmp_path / "m.tflite").exists()
