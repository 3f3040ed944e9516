import random
from dataclasses import replace

import pytest
import torch
from torch.utils.data import TensorDataset

from quadnas.data import load_dataset
from quadnas.supernet import Supernet
from quadnas.supernet.evaluate import Evaluator
from quadnas.supernet.train import TrainConfig, train_supernet


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", resolution=32)
    (xt, yt), (xv, yv) = data.train.tensors, data.val.tensors
    return replace(data, train=TensorDataset(xt[:384], yt[:384]), val=TensorDataset(xv[:100], yv[:100]))


def test_trained_subnets_beat_chance_and_stay_in_range(tiny_space, digits, tmp_path):
    config = TrainConfig(epochs=2, batch_size=32, lr=3e-3, warmup_epochs=0.5)
    supernet = train_supernet(tiny_space, digits, config, tmp_path / "s.pt", progress=False)
    evaluator = Evaluator(supernet, digits, batch_size=32)  # several batches, the last one partial
    for arch in (tiny_space.largest(), tiny_space.smallest(), tiny_space.sample(random.Random(0))):
        assert 0.3 < evaluator.accuracy(arch) <= 1.0  # chance is 0.1


def test_accuracy_is_cached_per_arch_and_restores_train_mode(tiny_space, digits, monkeypatch):
    supernet = Supernet(tiny_space, digits.num_classes).train()
    evaluator = Evaluator(supernet, digits, batch_size=64)
    calls = []
    forward = supernet.forward
    monkeypatch.setattr(supernet, "forward", lambda x, arch: calls.append(arch) or forward(x, arch))
    largest, smallest = tiny_space.largest(), tiny_space.smallest()
    first = evaluator.accuracy(largest)
    assert len(calls) == 2  # 100 images in batches of 64
    assert evaluator.accuracy(largest) == first and len(calls) == 2
    evaluator.accuracy(smallest)
    assert len(calls) == 4 and set(evaluator.cache) == {largest, smallest}
    assert supernet.training


def test_accuracy_matches_counting_by_hand(tiny_space, digits):
    """Counted by hand over the same batches of 7: a conv's last bits may depend on the batch size (the
    kernel is picked by shape, per CPU), which could flip a near-tie between two logits."""
    supernet = Supernet(tiny_space, digits.num_classes)
    arch = tiny_space.largest()
    x, y = digits.val.tensors
    with torch.no_grad():
        correct = sum(
            int((supernet.eval()(x[i : i + 7], arch).argmax(1) == y[i : i + 7]).sum()) for i in range(0, len(y), 7)
        )
    assert len(y) % 7  # the last batch is partial
    assert Evaluator(supernet, digits, batch_size=7).accuracy(arch) == pytest.approx(correct / len(y))
