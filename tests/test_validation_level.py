"""scripts/validation_level.py: a validation's level, its shape, and the prediction against the second pass."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import validation_level  # noqa: E402


def test_one_factor_off_is_all_level_and_no_shape():
    measured = [10.0, 20.0, 40.0]
    found = validation_level.level_and_shape(
        {"measured_ms": measured, "predicted_ms": [m * 1.4 for m in measured], "repeat_ms": [12.0, 20.0, 40.0]}
    )
    assert found["level"] == pytest.approx(1.4) and found["shape_max_err_pct"] == pytest.approx(0.0)
    assert found["second_over_first_min"] == pytest.approx(1.0) and found["second_over_first_max"] == pytest.approx(1.2)
    assert found["against_second_pass"]["within_5_pct"] == 0.0  # 1.4x of the second pass too


def test_bench_threads_json_gives_every_case_and_other_files_are_refused_in_one_line(tmp_path):
    case = {"validate": {"measured_ms": [1.0, 2.0], "predicted_ms": [1.0, 2.2]}}
    path = tmp_path / "bench_threads.json"
    path.write_text(json.dumps({"cases": {"a": case, "b": case}}))
    assert list(validation_level.validations(path)) == ["bench_threads.json a", "bench_threads.json b"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="neither a validate --json file nor bench_threads JSON"):
        validation_level.validations(other)
    with pytest.raises(SystemExit, match="cannot read it as JSON"):
        validation_level.validations(tmp_path / "missing.json")
