"""Table headers: typed sections, tables of the earlier release, and files the earlier release can read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from quadnas.errors import QuadnasError
from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace

EARLIER = Path(__file__).parent / "fixtures" / "tables_v0"  # written by the earlier release (make.py there)
FIGURES = Path(__file__).parents[1] / "docs" / "figures"  # tables kept beside benchmark figures
SHIPPED = sorted(SHIPPED_TABLES_DIR.glob("*.csv")) + sorted(FIGURES.rglob("*.csv"))


def header_lines(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if line.startswith("#"))


@pytest.mark.parametrize("name", ["measured", "adapted"])
def test_a_table_of_the_earlier_release_predicts_what_it_did(name, tiny_space):
    table = LatencyTable.read(EARLIER / f"{name}.csv")
    expected = json.loads((EARLIER / "predictions.json").read_text())[name]
    predictor = LatencyPredictor(table, tiny_space)
    assert {arch: predictor.predict(tiny_space.parse(arch)) for arch in expected} == pytest.approx(expected, rel=1e-12)


def test_the_earlier_releases_flat_keys_land_in_their_sections():
    measured = LatencyTable.read(EARLIER / "measured.csv").meta
    assert measured.threads == 1  # written as text
    assert measured.measurement is not None and measured.adapted is None and measured.estimate is None
    assert (measured.target, measured.clock, measured.measurement.overhead_ms) == ("CPU", "cpu", 0.002)
    assert measured.measurement.runtime_config == {
        "intra_op_num_threads": "1",
        "inter_op_num_threads": "1",
        "execution_mode": "sequential",
    }
    [point] = measured.networks()  # one network on one line is still a list of one
    assert (point.arch, point.measured_ms, point.runs) == ("k3e2-id-k5e2-id-id-k3e4", 1.5, 7)
    adapted = LatencyTable.read(EARLIER / "adapted.csv").meta
    assert adapted.adapted is not None and adapted.adapted.fit is not None
    assert adapted.adapted.source.name == "far-away" and adapted.adapted.source.rows_sha == "0123456789abcdef"
    assert adapted.adapted.fit.global_scale == 2.0 and adapted.adapted.fit.shifts == {}  # a default
    assert adapted.clock == "wall" and len(adapted.networks()) == 2


def test_one_network_is_written_as_a_list_of_one():
    """So that a reader that takes a repeated key for a list also reads a single network as one."""
    text = LatencyTable.read(EARLIER / "measured.csv").to_text()
    assert "# calibration_networks: [{arch: k3e2-id-k5e2-id-id-k3e4, measured_ms: 1.5," in text


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_a_committed_table_rewrites_the_same_header_lines(path, tmp_path):
    """Every key stays flat and keeps its value, so the earlier release reads what this one writes."""
    table = LatencyTable.read(path)
    again = LatencyTable.read(table.write(tmp_path / path.name))
    assert header_lines(again.to_text()) == header_lines(path.read_text())
    assert again.meta == table.meta and again.rows.equals(table.rows)


def test_sections_follow_the_kind_of_table():
    estimate = LatencyTable.read(SHIPPED_TABLES_DIR / "cortex-a76.csv").meta
    assert estimate.measurement is None and estimate.estimate is not None
    assert estimate.target is None and estimate.clock == "wall" and estimate.networks() == []
    assert estimate.estimate.device_model().peak_gflops > 0 and estimate.estimate.fit_points
    measured = LatencyTable.read(SHIPPED_TABLES_DIR / "amd-epyc-litert-1t.csv").meta
    assert measured.measurement is not None and measured.measurement.delegate == "XNNPACK"
    assert measured.clock == "cpu" and len(measured.networks()) == measured.calibration.networks
    grown = measured.with_networks([*measured.networks(), measured.networks()[0]])
    assert len(grown.networks()) == len(measured.networks()) + 1 and measured.networks() != grown.networks()


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("measured", "# clock: cpu", "# clock: sundial", "header key 'clock': Input should be 'wall' or 'cpu'"),
        ("adapted", "{name: far-away, ", "{", "header key 'adapted_from' lacks 'name'"),
        ("measured", "measured_ms: 1.5", "measured_ms: -1", "header key 'calibration_networks.0.measured_ms'"),
    ],
)
def test_a_bad_section_value_names_the_files_key(tmp_path, name, old, new, expected):
    text = (EARLIER / f"{name}.csv").read_text()
    assert old in text
    path = tmp_path / "bad.csv"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(QuadnasError, match=re.escape(expected)):
        LatencyTable.read(path)


def test_tiny_space_fixture_is_the_space_the_earlier_tables_were_made_for(tiny_space: SearchSpace):
    assert LatencyTable.read_meta(EARLIER / "measured.csv").space_fingerprint == tiny_space.fingerprint()
