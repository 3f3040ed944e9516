"""scripts/rank_correlation.py: the quick run, its cache, workers, arch spread, proxies, intervals, argument errors."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import rank_correlation as rc  # noqa: E402

from quadnas.errors import QuadnasError  # noqa: E402
from quadnas.supernet.proxies import PROXIES  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One --quick run (tiny space, digits, uniform and fairnas, a second stand-alone seed): JSON path, PNG, result."""
    folder = tmp_path_factory.mktemp("rank")
    out, png = folder / "rc.json", folder / "rc.png"
    assert rc.main(["--quick", "--repeat-seed", "1", "--out", str(out), "--plot", str(png)]) == 0
    return out, png, json.loads(out.read_text())


@pytest.mark.slow
def test_quick_run_writes_json_and_png(quick):
    _, png, result = quick
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result["methods"]) == {"uniform", "fairnas"}
    for m in result["methods"].values():
        for key in ("tau", "rho"):
            assert m[key] is not None and -1.0 <= m[key] <= 1.0
    noise = result["noise_ceiling"]["1"]
    assert -1.0 <= noise["tau"] <= 1.0 and all("1" in a["standalone_repeats"] for a in result["archs"])
    # every proxy, and predicted latency, scored against the first seed and the seeds' mean, with intervals
    assert list(result["proxies"]) == [*PROXIES, "latency"]
    for entry in [*result["methods"].values(), *result["proxies"].values(), noise]:
        for scores in (entry, entry.get("vs_mean_of_seeds", entry)):
            for key in ("tau", "rho"):
                low, high = scores[f"{key}_ci"]
                assert -1.0 <= low <= high <= 1.0
    assert all(result["proxies"][name]["seconds_per_arch"] >= 0 for name in PROXIES)
    assert list(result["combinations"]) == [f"uniform+{name}" for name in PROXIES]  # latency is no partner
    assert -1.0 <= result["combinations"]["uniform+zico"]["vs_mean_of_seeds"]["tau"] <= 1.0
    assert result["methods"]["uniform"]["tau_lead"] == {"over": "uniform", "lead": 0.0, "ci": [0.0, 0.0]}
    lead = result["proxies"]["params"]["tau_lead"]
    assert lead["ci"][0] <= lead["lead"] <= lead["ci"][1]
    assert result["proxy_settings"] == rc.PROXY_SETTINGS
    archs = result["archs"]
    assert len(archs) == 5 and len({a["arch"] for a in archs}) == 5
    latencies = [a["latency_ms"] for a in archs]
    assert latencies == sorted(latencies) and latencies[0] < latencies[-1]
    for a in archs:
        assert 0.0 <= a["standalone_accuracy"] <= 1.0
        assert set(a["inherited"]) == {"uniform", "fairnas"}
        assert list(a["proxies"]) == list(PROXIES) and all(math.isfinite(v) for v in a["proxies"].values())
    params = [a["proxies"]["params"] for a in archs]
    assert params[0] < params[-1]  # the fastest arch is the smallest
    assert result["recipe"]["space"] == "tiny" and result["runs"][-1]["wall_seconds"] > 0
    # equal compute: fairnas trains len(choices) paths per step, so it takes that many times fewer steps
    assert result["methods"]["fairnas"]["paths_per_step"] == 7
    assert result["methods"]["uniform"]["steps"] == pytest.approx(7 * result["methods"]["fairnas"]["steps"], abs=7)


@pytest.mark.slow
def test_rerun_reuses_cached_results(quick, monkeypatch, tmp_path):
    out, _, first = quick
    copy = tmp_path / "rc.json"
    copy.write_text(out.read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("cached results were retrained")

    monkeypatch.setattr(rc, "standalone_accuracy", no_training)
    monkeypatch.setattr(rc, "train_supernet_method", no_training)
    monkeypatch.setattr(rc, "proxy_scores", no_training)
    args = [
        "--quick",
        "--methods",
        "uniform",
        "--repeat-seed",
        "1",
        "--out",
        str(copy),
        "--plot",
        str(tmp_path / "p.png"),
    ]
    assert rc.main(args) == 0
    again = json.loads(copy.read_text())
    for key in ("archs", "methods", "proxies", "noise_ceiling"):
        assert again[key] == first[key], key
    assert len(again["runs"]) == len(first["runs"]) + 1


@pytest.mark.slow
def test_cached_proxies_are_dropped_when_their_settings_change(quick, tmp_path):
    out, _, first = quick
    copy = tmp_path / "rc.json"
    copy.write_text(json.dumps({**first, "proxy_settings": {"batches": 3}}))
    result = rc.load_cache(copy, rc.Recipe.model_validate(first["recipe"]))
    assert all("proxies" not in a and "standalone_accuracy" in a for a in result["archs"])
    assert rc.missing_proxies(list(PROXIES), result) == [rc.ProxyJob(i) for i in range(len(result["archs"]))]
    assert rc.missing_proxies(list(PROXIES), rc.load_cache(out, rc.Recipe.model_validate(first["recipe"]))) == []


@pytest.mark.slow
def test_a_store_moved_to_another_fingerprint_is_still_a_cache(quick, tmp_path):
    """refingerprint_store.py records the move in the recipe; the record is kept, not compared."""
    _, _, first = quick
    moved = {"from": "0" * 16, "to": first["recipe"]["data_fingerprint"], "pairs": []}
    copy = tmp_path / "rc.json"
    copy.write_text(json.dumps({**first, "recipe": {**first["recipe"], rc.MOVED: moved}}))
    result = rc.load_cache(copy, rc.Recipe.model_validate(first["recipe"]))
    assert result["archs"] == first["archs"] and result["recipe"][rc.MOVED] == moved


def test_unknown_method_is_one_line_error(tmp_path, capsys):
    assert rc.main(["--quick", "--methods", "uniform,bogus", "--out", str(tmp_path / "x.json")]) == 2
    assert "bogus" in capsys.readouterr().err


def test_a_method_at_a_seed_is_that_method_with_its_own_supernet_seed():
    available = rc.methods(2.0)
    seeded = rc.with_seeds(available, ["uniform", "proxy-w0.25@3", "bogus@1", "uniform@x"])
    assert seeded["proxy-w0.25@3"] == rc.replace(available["proxy-w0.25"], seed=3)
    assert set(seeded) == {*available, "proxy-w0.25@3"}  # an unknown base or a bad seed stays unknown


def test_unknown_proxy_is_one_line_error(tmp_path, capsys):
    assert rc.main(["--quick", "--proxies", "synflow,bogus", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "meco_opt" in err


def test_vectorised_tau_and_rho_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(40, 12)).astype(float)  # many ties
    y = x + rng.integers(0, 4, size=x.shape)
    tau, rho = rc.kendall_tau_b(x, y), rc.spearman_rho(x, y)
    for i in range(len(x)):
        assert tau[i] == pytest.approx(stats.kendalltau(x[i], y[i]).statistic, abs=1e-12)
        assert rho[i] == pytest.approx(stats.spearmanr(x[i], y[i]).statistic, abs=1e-12)
    constant = np.ones((1, 12))
    assert np.isnan(rc.kendall_tau_b(constant, y[:1])).all() and np.isnan(rc.spearman_rho(constant, y[:1])).all()


def test_bootstrap_intervals_are_seeded_and_narrow_with_agreement():
    truth = np.arange(30.0)
    noisy = truth + np.random.default_rng(1).normal(0, 8, 30)
    exact = rc.correlations(truth, 2 * truth)
    assert exact["tau"] == 1.0 and exact["tau_ci"] == [1.0, 1.0] and exact["rho_ci"] == [1.0, 1.0]
    loose = rc.correlations(truth, noisy)
    low, high = loose["tau_ci"]
    assert low < loose["tau"] < high < 1.0 and loose == rc.correlations(truth, noisy)
    taus, _ = rc.bootstrap(truth, noisy)
    assert len(taus) == rc.RESAMPLES
    assert rc.interval(np.array([np.nan, np.nan, 0.5])) is None  # mostly undefined resamples: no interval


def test_spread_archs_cover_the_latency_range(tiny_space):
    latency, source = rc.latency_model(tiny_space, "cpu")
    assert "cost model" in source  # the shipped cpu table has rows for quadranet-t only
    archs = rc.spread_archs(tiny_space, latency, 8, seed=0)
    ms = latency(archs)
    assert len(set(archs)) == 8 and list(ms) == sorted(ms)
    assert ms[0] == latency([tiny_space.smallest()])[0]  # the pool reaches the all-identity arch


@pytest.mark.slow
def test_workers_give_the_same_results_as_one_process(tmp_path):
    """Jobs in fresh worker processes are seeded by the job alone: the same accuracies as in-process."""
    common = [
        "--quick",
        "--methods",
        "uniform",
        "--archs",
        "3",
        "--train-images",
        "160",
        "--standalone-epochs",
        "1",
        "--supernet-epochs",
        "1",
        "--repeat-seed",
        "1",
        "--proxies",
        "params,zico",
    ]
    results = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        assert rc.main([*common, "--workers", workers, "--out", str(out), "--plot", str(tmp_path / "p.png")]) == 0
        results.append(json.loads(out.read_text()))
    one, two = results

    def without_seconds(archs):
        return [{k: v for k, v in a.items() if k != "proxy_seconds"} for a in archs]

    assert without_seconds(one["archs"]) == without_seconds(two["archs"])
    assert one["proxies"]["zico"]["tau"] == two["proxies"]["zico"]["tau"]
    assert one["methods"]["uniform"]["tau"] == two["methods"]["uniform"]["tau"]
    assert two["runs"][-1]["workers"] == 2


@pytest.mark.parametrize(
    "device, message", [("bogus", "is not supported"), ("mps", "is not supported"), ("cuda:0", "needs CUDA")]
)
def test_bad_train_device_is_one_line_error(tmp_path, capsys, device, message):
    if device.startswith("cuda") and __import__("torch").cuda.is_available():
        pytest.skip("CUDA is available here")
    assert rc.main(["--quick", "--train-device", device, "--out", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err


def test_spread_archs_stay_under_max_latency(tiny_space):
    latency, _ = rc.latency_model(tiny_space, "cpu")
    everything = latency(rc.spread_archs(tiny_space, latency, 6, seed=0))
    cap = float(np.median(everything))
    capped = latency(rc.spread_archs(tiny_space, latency, 6, seed=0, max_ms=cap))
    assert capped.max() <= cap < everything.max() and len(set(capped)) == 6
    with pytest.raises(QuadnasError, match="raise --max-latency"):
        rc.spread_archs(tiny_space, latency, 6, seed=0, max_ms=everything.min())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--workers", "0"], "--workers 0"),
        (["--archs", "1"], "at least 2 archs"),
        (["--repeat-seed", "0"], "is the first seed"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, extra, message):
    assert rc.main(["--quick", *extra, "--out", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err


def test_a_combination_is_the_mean_of_the_two_ranks():
    archs = [
        {"inherited": {"uniform": 0.90}, "proxies": {"zico": 5.0}},
        {"inherited": {"uniform": 0.95}, "proxies": {"zico": 1.0}},
        {"inherited": {"uniform": 0.80}, "proxies": {"zico": 9.0}},
        {"inherited": {"uniform": 0.85}, "proxies": {"zico": 3.0}},
    ]
    # uniform ranks 3 4 1 2, zico ranks 3 1 4 2
    assert rc.combined(archs, "uniform+zico") == [3.0, 2.5, 2.5, 2.0]


def test_a_method_over_its_supernet_seeds_has_each_seeds_tau_their_mean_and_range():
    result = {
        "recipe": {"seed": 0},
        "methods": {
            "uniform": {"tau": 0.5, "vs_mean_of_seeds": {"tau": 0.6}},
            "uniform@1": {"tau": 0.3, "vs_mean_of_seeds": {"tau": 0.4}},
            "uniform@2": {"tau": 0.6, "vs_mean_of_seeds": {"tau": 0.8}},
            "long": {"tau": 0.7},  # one seed only: no group
        },
    }
    groups = rc.over_supernet_seeds(result)
    assert list(groups) == ["uniform"]
    assert groups["uniform"]["tau"] == {"0": 0.6, "1": 0.4, "2": 0.8}  # against the mean of the stand-alone seeds
    assert groups["uniform"]["mean"] == pytest.approx(0.6)
    assert (groups["uniform"]["min"], groups["uniform"]["max"]) == (0.4, 0.8)
