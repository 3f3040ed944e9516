"""scripts/judge_seeds.py: the ground truth it reads and the order a judge of several seeds gives."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import judge_seeds  # noqa: E402


def test_ground_truth_is_the_mean_over_seeds_0_to_2_of_archs_trained_with_all_three(tmp_path):
    path = tmp_path / "svb.json"
    stores = {
        "a": {"0": 0.5, "1": 0.6, "2": 0.7},
        "b": {"0": 0.9, "1": 0.9},
        "c": {"3": 0.1, "0": 0.2, "1": 0.2, "2": 0.2},
    }
    path.write_text(json.dumps({"standalone": stores}))
    assert judge_seeds.ground_truth([path]) == pytest.approx({"a": 0.6, "c": 0.2})  # b lacks seed 2


def test_judged_orders_by_the_mean_of_the_first_k_seeds_and_keeps_the_search_order_on_ties():
    finalists = [{"arch": "x"}, {"arch": "y"}, {"arch": "z"}]
    scores = {"x": [0.60, 0.50], "y": [0.58, 0.62], "z": [0.60, 0.40]}
    assert judge_seeds.judged(finalists, scores, 1) == ["x", "z", "y"]  # x and z tie: the search's order
    assert judge_seeds.judged(finalists, scores, 2) == ["y", "x", "z"]


def test_a_run_of_another_kind_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "tpe.json"
    path.write_text(json.dumps({"recipe": {"searched": "tpe"}, "budgets": {}}))
    with pytest.raises(SystemExit, match="not a search_vs_baselines.py run with --searched default"):
        judge_seeds.main([str(path), "--out", str(tmp_path / "out.json")])
    with pytest.raises(SystemExit, match="cannot read it as JSON"):
        judge_seeds.main([str(tmp_path / "missing.json"), "--out", str(tmp_path / "out.json")])
