"""quadnas.supernet.standalone: the stand-alone network, training in place, an arch's stand-alone accuracy."""

import torch
from torch.utils.data import TensorDataset

from quadnas.data import Dataset
from quadnas.progress import Progress
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.standalone import standalone_accuracy, standalone_net, train_standalone
from quadnas.supernet.train import SupernetTrainer


def random_images(n: int, classes: int = 10) -> TensorDataset:
    return TensorDataset(torch.randn(n, 3, 32, 32), torch.randint(0, classes, (n,)))


def test_standalone_net_starts_with_the_supernet_layer_scale(tiny_space):
    arch = tiny_space.largest()
    net = standalone_net(tiny_space, arch, 10, layer_scale=0.1)
    gammas = [p for n, p in net.named_parameters() if "gamma" in n]
    assert len(gammas) == 2 * tiny_space.num_blocks and all(torch.all(g == 0.1) for g in gammas)
    config = TrainConfig(layer_scale_init=0.1)
    supernet = SupernetTrainer(tiny_space, 10, config, steps_per_epoch=1).model
    assert all(torch.all(b.full.gamma1 == 0.1) for b in supernet.blocks)


def test_train_standalone_trains_in_place_and_reports_every_step(tiny_space):
    train = random_images(16)
    torch.manual_seed(0)
    initial = standalone_net(tiny_space, tiny_space.largest(), 10, layer_scale=0.1).state_dict()

    def trained(progress: Progress | None) -> torch.nn.Module:
        net = standalone_net(tiny_space, tiny_space.largest(), 10, layer_scale=0.1)
        net.load_state_dict(initial)
        kwargs = dict(steps=3, lr=1e-2, weight_decay=0.05, batch_size=8, warmup_steps=1, seed=1)
        assert train_standalone(net, train, **kwargs, progress=progress) is net
        return net

    events = []
    reported, silent = trained(Progress(events.append)), trained(None)
    assert not reported.training
    assert [e.done for e in events] == [1, 2, 3] and "loss " in events[-1].note  # the loss at report steps
    weights = reported.state_dict()
    assert any(not torch.equal(weights[k], initial[k]) for k in initial)
    # reporting does not change training: the same seeds give the same weights
    assert all(torch.equal(a, b) for a, b in zip(weights.values(), silent.state_dict().values()))


def test_standalone_accuracy_is_seeded_by_the_config(tiny_space):
    """The same recipe and seed give the same accuracy; the accuracy is a fraction of the validation split."""
    torch.manual_seed(0)
    data = Dataset("random", "random", tuple("0123456789"), random_images(16), random_images(8), 32, (0.0,), (1.0,), "")
    config = TrainConfig(batch_size=8, memory_efficient=False, augment="none", seed=3)
    arch = tiny_space.smallest()
    first = standalone_accuracy(tiny_space, arch, data, config, steps=2, warmup_fraction=0.5)
    assert first == standalone_accuracy(tiny_space, arch, data, config, steps=2, warmup_fraction=0.5)
    assert first * len(data.val) == round(first * len(data.val)) and 0.0 <= first <= 1.0
