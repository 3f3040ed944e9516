"""scripts/rank_correlation.py: the quick run, its cache, FairNAS paths and steps, kernel transforms."""

import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

import rank_correlation as rc  # noqa: E402

from quadnas.errors import QuadnasError  # noqa: E402
from quadnas.space import SearchSpace  # noqa: E402
from quadnas.supernet.elastic import ElasticQuadraBlock  # noqa: E402
from quadnas.supernet.train import TrainConfig  # noqa: E402


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
    archs = result["archs"]
    assert len(archs) == 5 and len({a["arch"] for a in archs}) == 5
    latencies = [a["latency_ms"] for a in archs]
    assert latencies == sorted(latencies) and latencies[0] < latencies[-1]
    for a in archs:
        assert 0.0 <= a["standalone_accuracy"] <= 1.0
        assert set(a["inherited"]) == {"uniform", "fairnas"}
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

    monkeypatch.setattr(rc, "train_standalone", no_training)
    monkeypatch.setattr(rc, "train_supernet_method", no_training)
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
    for key in ("archs", "methods", "noise_ceiling"):
        assert again[key] == first[key], key
    assert len(again["runs"]) == len(first["runs"]) + 1


def test_unknown_method_is_one_line_error(tmp_path, capsys):
    assert rc.main(["--quick", "--methods", "uniform,bogus", "--out", str(tmp_path / "x.json")]) == 2
    assert "bogus" in capsys.readouterr().err


@pytest.mark.parametrize("space_name", ["tiny", "quadranet-t"])
def test_fairnas_paths_use_every_choice_of_every_block_once(space_name):
    space = SearchSpace.load(space_name)
    rng = random.Random(0)
    steps = [rc.fairnas_paths(space, rng) for _ in range(3)]
    for paths in steps:
        assert len(paths) == len(space.choices)
        for block in range(space.num_blocks):
            assert Counter(p.blocks[block] for p in paths) == Counter(space.choices)
    assert steps[0] != steps[1]  # a fresh permutation every step


def test_fairnas_step_is_one_update_over_all_paths(tiny_space):
    config = TrainConfig(batch_size=8, memory_efficient=False)
    trainer = rc.FairNASTrainer(tiny_space, 10, config, steps_per_epoch=4)
    forwards, updates = [], []
    trainer.model.register_forward_pre_hook(lambda module, args: forwards.append(args[1]))
    trainer.optimizer.register_step_post_hook(lambda *args: updates.append(1))
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    trainer.step(x, y, 8)
    assert len(updates) == 1 and len(forwards) == len(tiny_space.choices)
    for block in range(tiny_space.num_blocks):
        assert Counter(a.blocks[block] for a in forwards) == Counter(tiny_space.choices)
    # every block ran its largest choice once, so all its weights got a gradient
    for name, p in trainer.model.blocks.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_kernel_transform_starts_as_centre_crop_and_learns(tiny_space):
    torch.manual_seed(0)
    block = ElasticQuadraBlock(16, 7, 4, memory_efficient=False)
    with torch.no_grad():  # layer scales large enough that the block visibly acts
        block.full.gamma1.fill_(1.0)
        block.full.gamma2.fill_(1.0)
    transformed = rc.KernelTransformBlock(block, [3, 5, 7])
    x = torch.randn(2, 16, 8, 8)
    for choice in tiny_space.choices:
        torch.testing.assert_close(transformed(x, choice), block(x, choice))
    k3 = next(c for c in tiny_space.choices if c.kernel == 3)
    transformed(x, k3).square().sum().backward()
    assert {n for n, p in transformed.transforms.items() if p.grad is not None} == {
        f"{conv}_{k}" for conv in ("dw_a", "dw_b", "dw_c") for k in (3, 5)
    }


def test_kernel_transforms_are_not_weight_decayed(tiny_space):
    trainer = rc.KernelTransformTrainer(tiny_space, 10, TrainConfig(memory_efficient=False), steps_per_epoch=2)
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    transforms = [p for n, p in trainer.model.named_parameters() if "transforms." in n]
    assert transforms and not any(id(p) in decayed for p in transforms)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(trainer.model.parameters()))


def test_spread_archs_cover_the_latency_range(tiny_space):
    latency, source = rc.latency_model(tiny_space, "cpu")
    assert "cost model" in source  # the shipped cpu table has rows for quadranet-t only
    archs = rc.spread_archs(tiny_space, latency, 8, seed=0)
    ms = latency(archs)
    assert len(set(archs)) == 8 and list(ms) == sorted(ms)
    assert ms[0] == latency([tiny_space.smallest()])[0]  # the pool reaches the all-identity arch


def test_standalone_net_starts_with_the_supernet_layer_scale(tiny_space):
    arch = tiny_space.largest()
    net = rc.standalone_net(tiny_space, arch, 10, layer_scale=0.1)
    gammas = [p for n, p in net.named_parameters() if "gamma" in n]
    assert len(gammas) == 2 * tiny_space.num_blocks and all(torch.all(g == 0.1) for g in gammas)
    config = TrainConfig(layer_scale_init=0.1)
    supernet = rc.UniformTrainer(tiny_space, 10, config, steps_per_epoch=1).model
    assert all(torch.all(b.full.gamma1 == 0.1) for b in supernet.blocks)


def test_inplace_distillation_teaches_the_smaller_paths_with_the_largest(tiny_space, monkeypatch):
    config = TrainConfig(batch_size=8, sandwich=True, sandwich_random=2, memory_efficient=False)
    trainer = rc.InplaceDistillTrainer(tiny_space, 10, config, steps_per_epoch=4)
    forwards, targets = [], []
    trainer.model.register_forward_pre_hook(lambda module, args: forwards.append(args[1]))
    cross_entropy = rc.F.cross_entropy

    def recording(logits, y, **kwargs):
        targets.append(y)
        return cross_entropy(logits, y, **kwargs)

    monkeypatch.setattr(rc.F, "cross_entropy", recording)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    trainer.step(x, y, 8)
    assert forwards[:2] == [tiny_space.largest(), tiny_space.smallest()] and len(forwards) == 4
    assert len(targets) == 1 and targets[0] is y  # only the largest path sees the labels


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
    ]
    results = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        assert rc.main([*common, "--workers", workers, "--out", str(out), "--plot", str(tmp_path / "p.png")]) == 0
        results.append(json.loads(out.read_text()))
    one, two = results
    assert one["archs"] == two["archs"]
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
