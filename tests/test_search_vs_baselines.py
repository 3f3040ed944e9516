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


def test_without_a_uniform_arch_under_the_budget_the_goal_asks_only_the_median(vpu):
    assert svb.hand_designed(vpu, 1.0) is None
    store = {"s": {"0": 0.95, "1": 0.96}, "r": {"0": 0.97, "1": 0.97}, "m": {"0": 0.90, "1": 0.91}}
    roles = {"searched": ["s"], "random, best": ["r"], "random, median": ["m"]}
    verdict = svb.verdict({"roles": roles, "best_measured": {"mean": 0.97}}, store)
    assert "hand-designed" not in verdict["searched_lead"] and "best_measured_lead_over_hand" not in verdict
    assert verdict["goal_met"] and verdict["never_loses"]  # 5 points over the median; no hand design to match
    store["m"] = {"0": 0.955, "1": 0.96}  # level with the searched arch
    assert not svb.verdict({"roles": roles}, store)["never_loses"]


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


def test_best_measured_is_the_best_mean_over_every_seed_under_the_budget(vpu):
    small, large = svb.hand_designed(vpu, 30.0), svb.hand_designed(vpu, 300.0)
    tiny = vpu.space.parse("-".join(["id"] * vpu.space.num_blocks))
    ours = {str(small): {"0": 0.60, "1": 0.62}, str(tiny): {"0": 0.70}}  # tiny lacks seed 1: not counted
    theirs = {str(large): {"0": 0.9, "1": 0.9}, str(tiny): {"0": 0.5, "1": 0.5}}
    best = svb.best_measured(vpu, 30.0, [ours, theirs], [0, 1])
    assert best is not None and best["arch"] == str(small) and best["mean"] == pytest.approx(0.61)
    assert svb.best_measured(vpu, 300.0, [ours, theirs], [0, 1])["arch"] == str(large)
    assert svb.best_measured(vpu, 1.0, [ours, theirs], [0, 1]) is None
    roles = {"searched": ["s"], "random, best": ["s"], "random, median": ["s"], "hand-designed": ["h"]}
    section = {"roles": roles, "best_measured": best}
    found = svb.verdict(section, {"s": {"0": 0.6, "1": 0.6}, "h": {"0": 0.58, "1": 0.58}})
    assert found["best_measured_lead_over_hand"] == pytest.approx(0.03)


def test_known_takes_rank_correlation_archs_of_the_same_recipe_only(tmp_path):
    space = SearchSpace.load("tiny")
    data = svb.load_dataset("digits", 32, seed=0, channels=space.config.in_channels)
    recipe = {**svb.RECIPE, "data": "digits", "epochs": 2.0, "trials": 10, "space": "tiny"}
    theirs = {
        "space": "tiny", "data_fingerprint": data.fingerprint, "train_images": len(data.train), "resolution": 32,
        "seed": 0, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05, "warmup_fraction": 0.1,
        "layer_scale_init": 0.1, "standalone_epochs": 2.0,
    }  # fmt: skip
    archs = [{"arch": "a", "standalone_accuracy": 0.8, "standalone_repeats": {"1": 0.7}}, {"arch": "b"}]
    path = tmp_path / "rank.json"
    path.write_text(json.dumps({"recipe": theirs, "archs": archs}))
    assert svb.known(path, space, recipe) == {"a": {"0": 0.8, "1": 0.7}}  # b was never trained stand-alone
    path.write_text(json.dumps({"recipe": {**theirs, "train_images": 100}, "archs": archs}))
    with pytest.raises(SystemExit, match="recipe differs in train_images"):
        svb.known(path, space, recipe)  # trained on a subset: another ground truth
    with pytest.raises(SystemExit, match="not a JSON file of rank_correlation.py"):
        svb.known(tmp_path / "missing.json", space, recipe)


def test_never_loses_asks_level_with_the_hand_design_and_near_the_best_measured():
    store = {
        "s": {"0": 0.95, "1": 0.96},
        "r": {"0": 0.93, "1": 0.92},
        "m": {"0": 0.90, "1": 0.91},
        "h": {"0": 0.945, "1": 0.955},
    }
    roles = {"searched": ["s"], "random, best": ["r"], "random, median": ["m"], "hand-designed": ["h"]}
    assert svb.verdict({"roles": roles}, store)["never_loses"]  # level with the hand design is enough
    store["h"] = {"0": 0.955, "1": 0.965}
    assert not svb.verdict({"roles": roles}, store)["never_loses"]  # below it is not
    store["h"] = {"0": 0.93, "1": 0.93}
    far = {"roles": roles, "best_measured": {"mean": 0.99}}  # leads the hand design by far more than the spread
    verdict = svb.verdict(far, store)
    assert verdict["searched_behind_best_measured"] == pytest.approx(0.035) and not verdict["never_loses"]
    assert svb.verdict({**far, "best_measured": {"mean": 0.96}}, store)["never_loses"]


def test_finalists_vs_standalone_pairs_each_finalist_with_its_known_mean():
    finalists = [{"arch": a, "trained": t} for a, t in (("a", 0.3), ("b", 0.2), ("c", 0.4), ("u", 0.5))]
    section = {"searches": {"default s0": {"finalists": finalists[:2]}, "default s1": {"finalists": finalists[2:]}}}
    stores = [{"a": {"0": 0.6, "1": 0.7}, "b": {"0": 0.5, "1": 0.5}}, {"c": {"0": 0.8, "1": 0.8}, "u": {"0": 0.9}}]
    found = svb.finalists_vs_standalone(section, stores, [0, 1])
    assert found["finalists"] == 4  # u lacks seed 1: no ground truth
    assert [(p["arch"], p["standalone"]) for p in found["with_ground_truth"]] == [("a", 0.65), ("b", 0.5), ("c", 0.8)]
    assert found["kendall_tau"] == pytest.approx(1.0)


def test_random_roles_are_borrowed_from_another_run_at_the_same_budget(tmp_path):
    other = tmp_path / "other.json"
    section = {
        "searches": {"random s0": {"arch": "r", "supernet_accuracy": 0.5, "run_dir": "runs/x"}},
        "roles": {"random, median": ["m"]},
        "random_median_supernet_accuracy": 0.4,
    }
    other.write_text(json.dumps({"budgets": {"vpu 30 ms": section}}))
    found = svb.random_of(other, "vpu", 30.0, 0)
    assert found["arch"] == "r" and found["median"] == {"arch": "m", "supernet_accuracy": 0.4}
    assert svb.random_of(other, "vpu", 20.0, 0) is None and svb.random_of(other, "vpu", 30.0, 1) is None


def test_a_study_is_named_after_the_supernet_it_scores_on():
    """A study refuses another supernet's scores: a changed search recipe must start new studies."""
    from argparse import Namespace

    from quadnas.supernet.recipe import TrainConfig

    default = TrainConfig.for_search("mnist5k-clutter")
    args = Namespace(data="mnist5k-clutter", checkpoint=None, train_width=None, train_epochs=None)
    assert svb.supernet_name(args) == f"w{default.width:g}e{default.epochs}"
    assert svb.supernet_name(Namespace(**{**vars(args), "train_width": 1.0})) == f"w1e{default.epochs}"
    assert svb.supernet_name(Namespace(**{**vars(args), "train_epochs": 8})) == f"w{default.width:g}e8"
    assert svb.supernet_name(Namespace(**{**vars(args), "checkpoint": Path("runs/ckpt/full.pt")})) == "full"
