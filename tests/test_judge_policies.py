"""scripts/judge_policies.py: each policy's pick among finalists, and the ground truth it joins from stores."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import judge_policies  # noqa: E402

# Judge accuracy (one seed) and supernet score of four finalists, the judge's best first.
FINALISTS = [
    {"arch": "hand", "trained": 0.65, "supernet_accuracy": 0.52},
    {"arch": "a", "trained": 0.64, "supernet_accuracy": 0.58},
    {"arch": "b", "trained": 0.64, "supernet_accuracy": 0.57},
    {"arch": "c", "trained": 0.60, "supernet_accuracy": 0.59},
]
SECOND = {"hand": 0.60, "a": 0.63, "b": 0.66, "c": 0.70}


def second(arch):
    return SECOND[arch]


def test_the_judge_picks_its_most_accurate_and_breaks_ties_by_the_search_order():
    assert judge_policies.by_judge(FINALISTS, second) == "hand"
    assert judge_policies.by_judge(FINALISTS[1:], second) == "a"  # a and b tie: a came first


def test_rank_sum_lets_the_supernet_outvote_a_judge_lead_of_one_rank():
    # ranks (judge, supernet): hand (4, 1), a (2.5, 3), b (2.5, 2), c (1, 4): a has the best sum
    assert judge_policies.by_rank_sum(FINALISTS, second) == "a"


def test_supernet_first_keeps_the_supernets_best_then_asks_the_judge():
    assert judge_policies.supernet_first(3)(FINALISTS, second) == "a"  # hand is not kept
    assert judge_policies.supernet_first(4)(FINALISTS, second) == "hand"


def test_a_second_seed_retrains_only_the_judges_top_and_picks_the_best_mean():
    asked = []

    def counted(arch):
        asked.append(arch)
        return SECOND[arch]

    # means: hand 0.625, a 0.635, b 0.65; c (0.65 too) is not among the top 3
    assert judge_policies.second_seed_for(3)(FINALISTS, counted) == "b"
    assert asked == ["hand", "a", "b"]
    assert judge_policies.second_seed_for(2)(FINALISTS, second) == "a"


def test_stores_join_seeds_of_one_arch_and_the_truth_needs_all_three():
    docs = [{"standalone": {"x": {"0": 0.5, "1": 0.6}}}, {"standalone": {"x": {"2": 0.7}, "y": {"0": 0.1}}}, {}]
    store = judge_policies.merged(docs)
    assert store == {"x": {"0": 0.5, "1": 0.6, "2": 0.7}, "y": {"0": 0.1}}
    assert judge_policies.means(store) == pytest.approx({"x": 0.6})


def test_the_verdict_puts_the_picks_in_the_searched_role():
    store = {
        "p": {"0": 0.64, "1": 0.65, "2": 0.66},
        "h": {"0": 0.60, "1": 0.61, "2": 0.62},
        "m": {"0": 0.58, "1": 0.59, "2": 0.60},
        "r": {"0": 0.55, "1": 0.56, "2": 0.57},
    }
    section = {"roles": {"searched": ["r"], "hand-designed": ["h"], "random, median": ["m"], "random, best": ["r"]}}
    found = judge_policies.budget_verdict(section, ["p"], store)
    assert found["picks_mean"] == pytest.approx(0.65)
    assert found["lead"]["hand-designed"] == pytest.approx(0.04)
    assert found["never_loses"]  # 4 and 6 points ahead, the seeds' spread is 1
    assert not judge_policies.budget_verdict(section, ["m"], store)["never_loses"]


def test_a_run_of_another_kind_is_refused_in_one_line(tmp_path):
    path = tmp_path / "tpe.json"
    path.write_text(json.dumps({"recipe": {"searched": "tpe"}, "budgets": {}}))
    with pytest.raises(SystemExit, match="not a search_vs_baselines.py run with --searched default"):
        judge_policies.main([str(path), "--truth-store", str(tmp_path / "t.json"), "--out", str(tmp_path / "o.json")])


def test_pooled_pairs_every_policy_with_the_judge_on_the_same_searches():
    def row(values, never):
        return {"picks": {f"s{i}": {"standalone": v} for i, v in enumerate(values)}, "never_loses": never}

    budgets = {
        "b1": {name: row([0.60, 0.62], name == "judge") for name in judge_policies.POLICIES},
        "b2": {name: row([0.50, 0.52], True) for name in judge_policies.POLICIES},
    }
    budgets["b1"]["judge + supernet ranks"] = row([0.62, 0.64], True)
    found = judge_policies.pooled(budgets)
    assert found["judge"]["gain_over_judge"] == 0 and found["judge"]["budgets_never_losing"] == 2
    ranks = found["judge + supernet ranks"]
    assert ranks["searches"] == 4 and ranks["picks_mean"] == pytest.approx(0.57)
    assert ranks["gain_over_judge"] == pytest.approx(0.01)
    assert 0 <= ranks["gain_interval"][0] <= 0.01 <= ranks["gain_interval"][1] <= 0.02
