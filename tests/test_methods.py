"""quadnas.bench.methods: FairNAS paths and steps, in-place distillation, kernel transforms."""

import random
from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from quadnas.bench.methods import (
    FairNASTrainer,
    InplaceDistillTrainer,
    KernelTransformBlock,
    KernelTransformTrainer,
    fairnas_paths,
    methods,
    train_supernet_method,
)
from quadnas.data import Dataset
from quadnas.space import SearchSpace
from quadnas.supernet.elastic import ElasticQuadraBlock
from quadnas.supernet.train import TrainConfig


def random_images(n: int, classes: int = 10) -> TensorDataset:
    return TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, classes, (n,)))


@pytest.mark.parametrize("space_name", ["tiny", "quadranet-t"])
def test_fairnas_paths_use_every_choice_of_every_block_once(space_name):
    space = SearchSpace.load(space_name)
    rng = random.Random(0)
    steps = [fairnas_paths(space, rng) for _ in range(3)]
    for paths in steps:
        assert len(paths) == len(space.choices)
        for block in range(space.num_blocks):
            assert Counter(p.blocks[block] for p in paths) == Counter(space.choices)
    assert steps[0] != steps[1]  # a fresh permutation every step


def test_fairnas_step_is_one_update_over_all_paths(tiny_space):
    config = TrainConfig(batch_size=8, memory_efficient=False)
    trainer = FairNASTrainer(tiny_space, 10, config, steps_per_epoch=4)
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
    transformed = KernelTransformBlock(block, [3, 5, 7])
    x = torch.randn(2, 16, 8, 8)
    for choice in tiny_space.choices:
        torch.testing.assert_close(transformed(x, choice), block(x, choice))
    k3 = next(c for c in tiny_space.choices if c.kernel == 3)
    transformed(x, k3).square().sum().backward()
    assert {n for n, p in transformed.transforms.items() if p.grad is not None} == {
        f"{conv}_{k}" for conv in ("dw_a", "dw_b", "dw_c") for k in (3, 5)
    }


def test_kernel_transforms_are_not_weight_decayed(tiny_space):
    trainer = KernelTransformTrainer(tiny_space, 10, TrainConfig(memory_efficient=False), steps_per_epoch=2)
    decayed = {id(p) for g in trainer.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    transforms = [p for n, p in trainer.model.named_parameters() if "transforms." in n]
    assert transforms and not any(id(p) in decayed for p in transforms)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(list(trainer.model.parameters()))


def test_inplace_distillation_teaches_the_smaller_paths_with_the_largest(tiny_space, monkeypatch):
    config = TrainConfig(batch_size=8, sandwich=True, sandwich_random=2, memory_efficient=False)
    trainer = InplaceDistillTrainer(tiny_space, 10, config, steps_per_epoch=4)
    forwards, targets = [], []
    trainer.model.register_forward_pre_hook(lambda module, args: forwards.append(args[1]))
    cross_entropy = F.cross_entropy

    def recording(logits, y, **kwargs):
        targets.append(y)
        return cross_entropy(logits, y, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", recording)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    trainer.step(x, y, 8)
    assert forwards[:2] == [tiny_space.largest(), tiny_space.smallest()] and len(forwards) == 4
    assert len(targets) == 1 and targets[0] is y  # only the largest path sees the labels


def test_train_supernet_method_takes_fewer_steps_per_path(tiny_space):
    data = Dataset("random", "random", tuple("0123456789"), random_images(32), random_images(8), 32, (0.0,), (1.0,), "")
    config = TrainConfig(batch_size=8, memory_efficient=False)  # 4 steps per epoch
    model, steps, paths = train_supernet_method(methods(2.0)["long"], tiny_space, data, config, 1.0, 0.1)
    assert (steps, paths) == (8, 1) and not model.training
    _, steps, paths = train_supernet_method(methods(2.0)["fairnas"], tiny_space, data, config, 1.0, 0.1)
    assert (steps, paths) == (1, len(tiny_space.choices))  # 4 / 7 paths, at least one step


def test_a_method_seed_changes_the_supernet_and_is_reproducible(tiny_space):
    data = Dataset("random", "random", tuple("0123456789"), random_images(32), random_images(8), 32, (0.0,), (1.0,), "")
    config = TrainConfig(batch_size=8, memory_efficient=False)
    uniform = methods(2.0)["uniform"]

    def weights(method):
        model, _, _ = train_supernet_method(method, tiny_space, data, config, 1.0, 0.1)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    config_seed, seeded = weights(uniform), weights(replace(uniform, seed=1))
    assert torch.equal(weights(replace(uniform, seed=config.seed)), config_seed)  # the config's seed, given
    assert torch.equal(weights(replace(uniform, seed=1)), seeded) and not torch.equal(seeded, config_seed)
