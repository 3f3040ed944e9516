"""scripts/search_vs_baselines.py: the hand-designed arch, the median random arch, the verdict."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import search_vs_baselines as svb  # noqa: E402

from quadnas.latency.devices import load_device_table  # noqa: E402
from quadnas.latency.predictor import LatencyPredictor  # noqa: E402
from quadnas.space import SearchSpace  # noqa: E402


@pytest.fixture(scope="module")
def vpu():
    return LatencyPredictor(load_device_table("vpu"), SearchSpace.load("quadranet-t"))


def test_hand_designed_is_uniform_and_the_largest_that_fits(vpu):
    arch = svb.hand_designed(vpu, 30.0)
    active = {b for b in arch.blocks if not b.is_identity}
    assert len(active) == 1 and vpu.predict(arch) <= 30.0
    stages = [[b for b in stage if not b.is_identity] for stage in vpu.space.stages_of(arch)]
    assert all(stage for stage in stages)  # at least one block per stage
    for looser in (60.0, 300.0):  # a looser budget affords a larger uniform arch
        assert vpu.predict(svb.hand_designed(vpu, looser)) > vpu.predict(arch)


def test_no_uniform_arch_under_the_budget_says_so(vpu):
    with pytest.raises(SystemExit, match="no uniform arch fits"):
        svb.hand_designed(vpu, 1.0)


def test_median_feasible_skips_infeasible_and_failed_trials():
    trials = pd.DataFrame(
        {
            "number": [0, 1, 2, 3, 4, 5],
            "user_attrs_arch": ["a", "b", "c", "d", "e", "f"],
            "user_attrs_accuracy": [0.90, 0.99, 0.80, 0.85, 0.95, 0.70],
            "user_attrs_feasible": [True, False, True, True, True, True],
            "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "FAIL"],
        }
    )
    assert svb.median_feasible(trials) == ("d", 0.85)  # a, c, d, e: the lower median
    with pytest.raises(SystemExit, match="no feasible arch"):
        svb.median_feasible(trials.assign(user_attrs_feasible=False))


def test_verdict_needs_a_lead_larger_than_the_seed_spread():
    store = {
        "s": {"0": 0.95, "1": 0.96},
        "r": {"0": 0.93, "1": 0.92},
        "m": {"0": 0.90, "1": 0.91},
        "h": {"0": 0.945, "1": 0.955},
    }
    roles = {"searched": ["s"], "random, best": ["r"], "random, median": ["m"], "hand-designed": ["h"]}
    verdict = svb.verdict({"roles": roles}, store)
    assert verdict["searched_lead"]["random, median"] == pytest.approx(0.05)
    assert verdict["searched_lead"]["hand-designed"] == pytest.approx(0.005)
    assert not verdict["goal_met"]  # 0.005 is inside the seeds' spread (~0.007)
    store["h"] = {"0": 0.90, "1": 0.90}
    assert svb.verdict({"roles": roles}, store)["goal_met"]


def test_verdict_judges_the_re_ranked_archs_alike():
    store = {"s": {"0": 0.95, "1": 0.95}, "q": {"0": 0.97, "1": 0.97}, "b": {"0": 0.90, "1": 0.91}}
    roles = {"searched": ["s"], svb.RERANKED: ["q"], **{role: ["b"] for role in svb.BASELINES}}
    verdict = svb.verdict({"roles": roles}, store)
    assert verdict["reranked_lead"]["hand-designed"] == pytest.approx(0.065)
    assert verdict["goal_met"] and verdict["goal_met_reranked"]
    assert "reranked_lead" not in svb.verdict({"roles": {k: v for k, v in roles.items() if k != svb.RERANKED}}, store)


def test_reuse_takes_missing_accuracies_of_the_same_recipe_and_refuses_another(tmp_path):
    recipe = {**svb.RECIPE, "epochs": 4.0, "trials": 100, "space": "quadranet-t"}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"recipe": {**recipe, "trials": 50}, "standalone": {"a": {"0": 0.5, "1": 0.6}}}))
    store = {"a": {"0": 0.9}}
    svb.reuse(store, other, recipe)  # another number of trials: the same stand-alone training
    assert store == {"a": {"0": 0.9, "1": 0.6}}  # what the store holds is kept
    with pytest.raises(SystemExit, match="recipe differs"):
        svb.reuse(store, other, {**recipe, "epochs": 8.0})
    with pytest.raises(SystemExit, match="not a JSON file of this script"):
        svb.reuse(store, tmp_path / "missing.json", recipe)  # a mistyped path: one line, no traceback
