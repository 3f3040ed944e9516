"""Rebuilding the shipped estimated tables (`quadnas.latency.estimate.build`) and its driver script."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.latency.estimate import build as build_module
from quadnas.latency.estimate import model as model_module
from quadnas.latency.estimate.build import rebuild
from quadnas.latency.estimate.differences import text_differences
from quadnas.latency.estimate.model import FitResult
from quadnas.latency.estimate.points import POINTS_CSV, read_points, select_myriad
from quadnas.latency.estimate.recipes import RECIPES
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace

SHIPPED = ("a100", "cortex-a76", "myriad-x")


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.load("quadranet-t-qe")


@pytest.fixture
def table_copies(tmp_path) -> Path:
    """A copy of the shipped estimated tables, so a check that goes wrong can never touch them."""
    for name in SHIPPED:
        shutil.copy(SHIPPED_TABLES_DIR / f"{name}.csv", tmp_path / f"{name}.csv")
    return tmp_path


def changed(space: SearchSpace, out: Path) -> list[str]:
    """The names of the tables a rebuild into `out` would change."""
    return sorted(r.path.stem for r in rebuild(space, out) if r.differences)


def test_shipped_tables_rebuild_unchanged(space):
    """Rebuilding changes no shipped table, and each rebuilt table is the text of the file."""
    rebuilt = rebuild(space, SHIPPED_TABLES_DIR)
    assert sorted(r.recipe.name for r in rebuilt) == list(SHIPPED)
    assert all(r.differences == [] for r in rebuilt)


def test_a_missing_table_is_new_and_takes_the_given_date(space, tmp_path):
    created = datetime(2024, 1, 2, tzinfo=timezone.utc)
    rebuilt = rebuild(space, tmp_path, created=created)
    assert all(r.differences == ["a new file"] and r.table.meta.created == created for r in rebuilt)


def test_build_script_is_up_to_date():
    """scripts/build_estimated_tables.py --check: the driver finds nothing to change."""
    path = SHIPPED_TABLES_DIR.parent / "scripts" / "build_estimated_tables.py"
    spec = importlib.util.spec_from_file_location("build_estimated_tables", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--check"]) == 0
    finally:
        del sys.modules[spec.name]


def scaled_fit(monkeypatch, factor) -> None:
    """Make the build's fit return each fitted parameter times `factor(i, name)` (i: its position)."""
    real_fit = build_module.fit

    def fit(prior, points, free, ties=None):
        result = real_fit(prior, points, free, ties)
        device = result.device.with_params({n: result.device.get(n) * factor(i, n) for i, n in enumerate(free)}, ties)
        return FitResult(device, result.points, tuple(p.model_ms(device) for p in result.points))

    monkeypatch.setattr(build_module, "fit", fit)


@pytest.mark.parametrize("relative", [1e-12, 1e-9, -1e-9])
def test_rebuild_ignores_tiny_fit_noise(space, monkeypatch, table_copies, relative):
    """Another host's floating point moves the fitted parameters in their last digits: nothing changes."""
    scaled_fit(monkeypatch, lambda i, name: 1 + relative * (-1) ** i)
    assert changed(space, table_copies) == []


def test_rebuild_ignores_ulp_noise_in_the_fit(space, monkeypatch, table_copies):
    """Residuals a few ULPs off (another host's log/exp or LAPACK) send myriad-x's unpinned eff.vector
    elsewhere (the failure seen on an AVX2 host); the existing fit is as good, so it is kept."""
    real_least_squares = model_module.least_squares

    def least_squares(fun, x0, **kwargs):
        def noisy(x):
            r = fun(x)
            ulps = np.frombuffer(hashlib.sha256(x.tobytes()).digest(), dtype=np.int8)[: len(r)] % 5 - 2
            return r * (1 + np.finfo(float).eps * ulps)

        return real_least_squares(noisy, x0, **kwargs)

    monkeypatch.setattr(model_module, "least_squares", least_squares)
    assert changed(space, table_copies) == []


def test_rebuild_catches_a_fitted_parameter_off_by_one_percent(space, monkeypatch, table_copies):
    """overhead_us (fitted on all three devices) 1% higher: every table would change."""
    assert all("overhead_us" in recipe.free for recipe in RECIPES)
    scaled_fit(monkeypatch, lambda i, name: 1.01 if name == "overhead_us" else 1.0)
    assert changed(space, table_copies) == list(SHIPPED)


def one_percent_more_bandwidth(monkeypatch) -> None:
    myriad = next(r for r in RECIPES if r.name == "myriad-x")
    bandwidth = myriad.prior.bandwidth_gbs
    monkeypatch.setattr(myriad, "prior", myriad.prior.model_copy(update={"bandwidth_gbs": 1.01 * bandwidth}))


def one_percent_slower_squeezenet(monkeypatch) -> None:
    """myriad-x's one measured point (SqueezeNet on an NCS2) 1% slower."""
    real_read_points = build_module.read_points

    def points(path):
        points = real_read_points(path)
        points.loc[points.device.str.startswith("NCS2") & (points.model == "SqueezeNet"), "latency_ms"] *= 1.01
        return points

    monkeypatch.setattr(build_module, "read_points", points)


@pytest.mark.parametrize("change", [one_percent_more_bandwidth, one_percent_slower_squeezenet])
def test_rebuild_catches_a_prior_or_target_off_by_one_percent(space, monkeypatch, table_copies, change):
    change(monkeypatch)
    assert changed(space, table_copies) == ["myriad-x"]


def test_text_differences_allow_one_unit_in_the_last_digit():
    """A rounding that ULP noise flipped passes; a larger change, an integer or any text does not."""
    line = "head,7,7,768,1000,0,0,0.498736,0.498736,0.498736,0\n# calibration: {mape_pct: 15.1, networks: 10}"
    same = [
        line.replace("0.498736,0", "0.498737,0", 1),
        line.replace("15.1", "15.09"),  # 15.1 is 15.10
        line.replace("15.1", "15.11"),
    ]
    assert all(text_differences(line, other) == [] for other in same)
    changed = [
        line.replace("0.498736", "0.503723", 1),
        line.replace("15.1", "15.12"),  # 1%; two units
        line.replace("768", "769"),
        line.replace("networks: 10", "networks: 11"),
        line.replace("mape_pct", "max_pct"),
        line + "\nextra",
    ]
    assert all(text_differences(line, other) for other in changed)


def test_points_weigh_measurements_above_predictions():
    """myriad-x: the one SqueezeNet measurement weighs 1, nn-Meter's predictions less; each names its source."""
    selected = select_myriad(read_points(POINTS_CSV))
    weights = [p.weight for p in selected]
    assert weights[0] == 1.0 and all(w < 1.0 for w in weights[1:])
    assert all("[" in p.description and "]" in p.description for p in selected)


def test_a_missing_reference_row_is_a_one_line_error(tmp_path):
    """A points file without a device's rows names what it lacks."""
    reference = read_points(POINTS_CSV)
    path = tmp_path / "points.csv"
    reference[~reference.device.str.startswith("NCS2")].to_csv(path, index=False)
    with pytest.raises(QuadnasError, match="expected one reference row for NCS2"):
        select_myriad(read_points(path))


def test_profile_estimate_writes_tables_for_a_space_and_keeps_unchanged_ones(tmp_path, capsys):
    """`quadnas profile estimate`: one table per estimated device covering the space; a rerun rewrites none."""
    tiny = SearchSpace.load("tiny")
    assert main(["profile", "estimate", "--space", "tiny", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("wrote") == len(SHIPPED)
    for name in SHIPPED:
        table = LatencyTable.read(tmp_path / f"{name}.csv")
        table.check_covers(tiny.all_op_specs())
        assert table.meta.provenance == "estimated" and table.meta.space == "tiny"
    written = {name: (tmp_path / f"{name}.csv").stat().st_mtime_ns for name in SHIPPED}
    assert main(["profile", "estimate", "--space", "tiny", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("unchanged") == len(SHIPPED)
    assert written == {name: (tmp_path / f"{name}.csv").stat().st_mtime_ns for name in SHIPPED}
