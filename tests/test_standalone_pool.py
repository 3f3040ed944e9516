"""quadnas.bench.standalone_pool: (arch, seed) accuracies trained in worker processes, kept in a store."""

import pytest

from quadnas.bench.standalone_pool import StandaloneRecipe, summary, train_missing

ARCH = "k3e2-k5e4-id-k7e2-id-k3e4"  # of the tiny space


def test_summary_of_per_arch_means_and_seed_spread():
    store = {"a": {"0": 0.5, "1": 0.7}, "b": {"0": 0.9}, "c": {"0": 0.1, "1": 0.1}}
    found = summary(store, ["a", "b"])
    assert found == {"mean": 0.75, "sd_between_archs": pytest.approx(0.2121, abs=1e-4), "sd_between_seeds": 0.1414,
                     "archs": 2}  # fmt: skip
    assert summary(store, ["b"]) == {"mean": 0.9, "sd_between_archs": None, "sd_between_seeds": None, "archs": 1}


def test_train_missing_trains_only_what_the_store_lacks():
    """One arch, two seeds, one already kept: one training in a worker process, reported and stored."""
    store = {ARCH: {"0": 0.25}}
    done = []
    recipe = StandaloneRecipe(data="digits", resolution=32, batch_size=64)
    train_missing("tiny", [ARCH, ARCH], [0, 1], 0.05, 2, store, lambda *a: done.append(a), recipe)
    assert [(arch, seed) for arch, seed, _ in done] == [(ARCH, 1)]
    assert store[ARCH]["0"] == 0.25 and store[ARCH]["1"] == done[0][2] and 0.0 <= done[0][2] <= 1.0
    train_missing("tiny", [ARCH], [0, 1], 0.05, 2, store, lambda *a: done.append(a), recipe)
    assert len(done) == 1  # nothing left to train: no pool, no call
