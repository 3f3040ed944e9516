"""Finalists judged by short stand-alone training: hand designs, caching, the pick, the files and the CLI."""

import json
from dataclasses import replace

import pandas as pd
import pytest
import yaml
from builders import tiny_search_argv

from quadnas._search import SearchConfig, search
from quadnas._search.config import DeviceBudget
from quadnas._search.finalists import (
    FinalistCache,
    FinalistRecipe,
    blocks_apart,
    finalist_settings,
    judge,
    pick_finalists,
)
from quadnas._search.hand import family, hand_designs, uniform_archs
from quadnas._search.results import Candidate
from quadnas._search.targets import Targets
from quadnas.cli import main
from quadnas.space import SearchSpace


def _targets(table, budget) -> Targets:
    return Targets.load([DeviceBudget(device=str(table), budget=budget)], SearchSpace.load("tiny"))


def test_uniform_archs_keep_one_choice_and_a_block_in_every_stage(tiny_space):
    archs = uniform_archs(tiny_space)
    plain = [c for c in tiny_space.choices if not c.is_identity and not c.enhanced]
    assert {family(a) for a in archs} == {str(c) for c in plain}
    for arch in archs:
        active = {str(c) for c in arch.blocks if not c.is_identity}
        assert len(active) == 1
        for stage in tiny_space.stages_of(arch):
            assert not stage[0].is_identity  # the first block of every stage is active


def test_hand_designs_are_the_slowest_of_each_family_that_fits(tiny_space, synthetic_table, budget):
    targets = _targets(synthetic_table, budget)
    hand = hand_designs(tiny_space, targets)
    assert hand and all(c.origin == "hand-designed" and c.trial is None for c in hand)
    assert len({family(c.arch) for c in hand}) == len(hand)
    for c in hand:
        assert targets.fits(c.latencies)
        same = [a for a in uniform_archs(tiny_space) if family(a) == family(c.arch)]
        fitting = [targets.predict(a)[targets.items[0].label] for a in same if targets.fits(targets.predict(a))]
        assert c.latency_ms == max(fitting)


def _ranked(space, texts):
    return [Candidate(space.parse(t), 0.9 - i / 100, {"d": 1.0}, i) for i, t in enumerate(texts)]


def test_pick_takes_the_top_k_and_every_hand_design_once(tiny_space):
    ranked = _ranked(tiny_space, ["k3e2-" * 5 + "k3e2", "k5e4-" * 5 + "k5e4", "k7e4-" * 5 + "k7e4"])
    hand = [
        Candidate(ranked[1].arch, None, {"d": 1.0}, None, origin="hand-designed"),
        Candidate(tiny_space.parse("k3e4-" * 5 + "k3e4"), None, {"d": 1.0}, None, origin="hand-designed"),
    ]
    picked = pick_finalists(ranked, hand, 2, tiny_space.network)
    assert [c.arch for c in picked] == [ranked[0].arch, ranked[1].arch, hand[1].arch]
    assert picked[1].origin == "search"  # the search proposed it too


def test_finalists_are_distinct_networks(tiny_space):
    """Archs that differ only in where a stage's identity blocks sit build one network: one finalist for both."""
    a, moved, other = (
        tiny_space.parse(text)  # the second stage (blocks 2 and 3) holds one active block
        for text in ("k5e4-k3e2-id-k5e4-k5e4-k5e4", "k5e4-id-k3e2-k5e4-k5e4-k5e4", "k5e4-k3e4-id-k5e4-k5e4-k5e4")
    )
    assert tiny_space.network(a) == tiny_space.network(moved) != tiny_space.network(other)
    ranked = [Candidate(x, 0.9 - i / 100, {"d": 1.0}, i) for i, x in enumerate((a, moved, other))]
    hand = [Candidate(moved, None, {"d": 1.0}, None, origin="hand-designed")]
    picked = pick_finalists(ranked, hand, 2, tiny_space.network, apart=1)
    assert [c.arch for c in picked] == [a, other]  # the moved twin and its hand design are a's network


def test_finalists_differ_in_enough_blocks(tiny_space):
    """A study's runner-up that changes one block of its best arch gives way to a network further off."""
    best, one_off, three_off = (
        "k5e4-k3e2-k3e2-k5e4-k5e4-k5e4",
        "k5e4-k3e2-k3e2-k5e4-k5e4-k7e4",
        "k5e4-k3e2-k3e2-k3e2-k3e2-k3e2",
    )
    ranked = _ranked(tiny_space, [best, one_off, three_off])
    assert blocks_apart(ranked[0].arch, ranked[1].arch) == 1
    assert [str(c.arch) for c in pick_finalists(ranked, [], 2, tiny_space.network, apart=3)] == [best, three_off]
    assert [str(c.arch) for c in pick_finalists(ranked, [], 2, tiny_space.network, apart=1)] == [best, one_off]
    assert [str(c.arch) for c in pick_finalists(ranked, [], 3, tiny_space.network, apart=4)] == [
        best
    ]  # none far enough


def test_judge_orders_by_trained_accuracy_and_reuses_the_cache(tmp_path, tiny_space, monkeypatch):
    from quadnas.data import load_dataset
    from quadnas.progress import Progress

    data = load_dataset("digits", 32)
    archs = [str(a) for a in uniform_archs(tiny_space)[:3]]
    finalists = [Candidate(a, 0.5, {"d": 1.0}, i) for i, a in enumerate(archs)]
    scores = dict(zip(archs, [0.2, 0.7, 0.7]))
    calls: list[str] = []

    def fake(space, arch, data, recipe, device, progress):
        calls.append(str(arch))
        return scores[str(arch)]

    cache, recipe = FinalistCache(tmp_path, tiny_space, data), FinalistRecipe(epochs=0.5)
    judged = judge(finalists, tiny_space, data, recipe, cache, Progress(), train=fake, recheck=0)
    assert [c.arch for c in judged] == [archs[1], archs[2], archs[0]]  # a tie keeps the given order
    assert [c.trained for c in judged] == [0.7, 0.7, 0.2]
    again = judge(finalists, tiny_space, data, recipe, cache, Progress(), train=fake, recheck=0)
    assert calls == archs and [c.arch for c in again] == [c.arch for c in judged]  # nothing trained twice
    judge(finalists[:1], tiny_space, data, FinalistRecipe(epochs=1.0), cache, Progress(), train=fake, recheck=0)
    assert calls == [*archs, archs[0]]  # another recipe trains again


def test_the_judges_best_two_train_again_with_the_next_seed_and_lead_by_their_mean(tmp_path, tiny_space):
    from quadnas.data import load_dataset
    from quadnas.progress import Progress

    data = load_dataset("digits", 32)
    archs = [str(a) for a in uniform_archs(tiny_space)[:4]]
    finalists = [Candidate(a, 0.5, {"d": 1.0}, i) for i, a in enumerate(archs)]
    # seed 3 ranks archs 0, 1, 2, 3; seed 4 turns the first two around, and arch 2 is never trained again
    scores = {3: dict(zip(archs, [0.70, 0.68, 0.66, 0.40])), 4: dict(zip(archs, [0.60, 0.66, 0.90, 0.90]))}
    calls: list[tuple[str, int]] = []

    def fake(space, arch, data, recipe, device, progress):
        calls.append((str(arch), recipe.seed))
        return scores[recipe.seed][str(arch)]

    cache, recipe = FinalistCache(tmp_path, tiny_space, data), FinalistRecipe(epochs=0.5)
    judged = judge(finalists, tiny_space, data, recipe, cache, Progress(), train=fake)
    assert [c.arch for c in judged] == [archs[1], archs[0], archs[2], archs[3]]
    assert [c.trained for c in judged] == pytest.approx([0.67, 0.65, 0.66, 0.40])
    assert [c.trained_seeds for c in judged] == [(0.68, 0.66), (0.70, 0.60), (0.66,), (0.40,)]
    assert sorted(calls) == sorted([(a, 3) for a in archs] + [(archs[0], 4), (archs[1], 4)])


def test_finalists_default_to_none_on_the_quick_bundled_data_only():
    from quadnas.data import load_dataset

    digits = load_dataset("digits", 32)
    assert finalist_settings(SearchConfig(), digits)[0] == 0
    count, recipe = finalist_settings(SearchConfig(finalists=2, finalist_epochs=0.5), digits)
    assert (count, recipe.epochs) == (2, 0.5)
    assert finalist_settings(SearchConfig(), replace(digits, name="mnist5k"))[0] == 0  # README's first command
    assert finalist_settings(SearchConfig(), replace(digits, name="mine"))[0] > 0


def test_a_search_with_finalists_picks_the_best_trained_and_writes_it(
    capsys, tmp_path, synthetic_table, tiny_checkpoint, budget
):
    argv = tiny_search_argv(tmp_path, synthetic_table, tiny_checkpoint, 6, budget)
    code = main([*argv, "--finalists", "2", "--finalist-epochs", "0.1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    finalists = doc["finalists"]
    hand = hand_designs(SearchSpace.load("tiny"), _targets(synthetic_table, budget))
    searched = [f for f in finalists if f["origin"] == "search"]
    assert len(searched) == 2 and [f["arch"] for f in searched] == [c["arch"] for c in doc["ranked"][:2]]
    assert {str(c.arch) for c in hand} <= {f["arch"] for f in finalists}
    assert all(0 <= f["trained"] <= 1 and f["accuracy"] is not None for f in finalists)
    assert [len(f["trained_seeds"]) for f in finalists] == [2, 2] + [1] * (len(finalists) - 2)  # the best two twice
    for f in finalists:
        assert f["trained"] == pytest.approx(sum(f["trained_seeds"]) / len(f["trained_seeds"]))
    for part in (finalists[:2], finalists[2:]):  # the rechecked two lead, each part the most accurate first
        assert [f["trained"] for f in part] == sorted((f["trained"] for f in part), reverse=True)
    assert doc["best"]["arch"] == finalists[0]["arch"] and doc["finalist_epochs"] == 0.1
    best = yaml.safe_load((tmp_path / doc["study"] / "best.yaml").read_text())
    assert best["arch"] == finalists[0]["arch"] and best["finalists"]["of"] == len(finalists)
    table = pd.read_csv(tmp_path / doc["study"] / "finalists.csv")
    assert [len(str(t).split()) for t in table["trained_seeds"]] == [len(f["trained_seeds"]) for f in finalists]
    cached = list((tmp_path / "finalists").glob("*.json"))
    assert len(cached) == 1


def test_finalists_zero_picks_by_supernet_accuracy_alone(tmp_path, synthetic_table, tiny_checkpoint, budget):
    config = SearchConfig(
        space="tiny", data="digits", device=str(synthetic_table), budget=budget, checkpoint=str(tiny_checkpoint),
        runs_dir=str(tmp_path), trials=4, sampler="random", finalists=0,
    )  # fmt: skip
    result = search(config)
    assert result.finalists == [] and result.best == result.ranked[0]
    assert not (result.run_dir / "finalists.csv").exists()


@pytest.mark.parametrize("flag, value", [("--finalists", "-1"), ("--finalist-epochs", "0")])
def test_bad_finalist_flags_are_one_line(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget, flag, value):
    with pytest.raises(SystemExit) as e:
        main([*tiny_search_argv(tmp_path, synthetic_table, tiny_checkpoint, 2, budget), flag, value])
    assert e.value.code == 2 and "Traceback" not in capsys.readouterr().err
