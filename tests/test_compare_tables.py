import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import compare_tables  # noqa: E402

from quadnas.latency.devices import load_device_table  # noqa: E402
from quadnas.latency.predictor import LatencyPredictor  # noqa: E402


def test_a_table_against_twice_its_own_predictions(default_space, tmp_path, capsys):
    archs = [default_space.sample(random.Random(i)) for i in range(6)]
    own = LatencyPredictor(load_device_table("vpu"), default_space)
    run = tmp_path / "run.json"
    run.write_text(json.dumps([{"archs": [str(a) for a in archs], "measured_ms": [2 * own.predict(a) for a in archs]}]))
    [measured] = compare_tables.measured_runs(run)
    figures = compare_tables.compare_run(own, measured)
    assert figures["ratio_median"] == pytest.approx(0.5) and figures["kendall_tau"] == pytest.approx(1.0)
    assert figures["mape_pct"] == pytest.approx(50.0) and figures["n"] == 6
    assert compare_tables.main(["--table", "no-such-table", str(run)]) == 2
    assert "unknown device" in capsys.readouterr().err
    for bad in (tmp_path / "missing.json", Path(__file__)):
        assert compare_tables.main(["--table", "vpu", str(bad)]) == 2
        assert "bench_predictor.py" in capsys.readouterr().err
