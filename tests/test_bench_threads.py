"""scripts/bench_threads.py: its command line refuses a mistyped table kind in one line."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import bench_threads  # noqa: E402


def test_a_table_kind_is_checked_before_anything_is_profiled(capsys):
    assert bench_threads.table_kind("openvino:int8:2") == ("openvino", "int8", "2")
    for typo in ("onnxruntime", "onnxruntime:fp16:2", "tflite:fp32:1", "openvino:fp32:two"):
        with pytest.raises(SystemExit) as stop:
            bench_threads.main(["rows", typo])
        assert stop.value.code == 2
        assert "is not backend:precision:threads" in capsys.readouterr().err
