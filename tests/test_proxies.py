"""Zero-cost proxies: hand-computed answers, determinism, and a network left as it was."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from quadnas.space import IDENTITY, Arch, SearchSpace
from quadnas.supernet.proxies import (
    PROXIES,
    batches_of,
    macs,
    meco,
    meco_opt,
    min_correlation_eigenvalue,
    params,
    synflow,
    weight_layers,
    zico,
)
from quadnas.supernet.standalone import standalone_net


def random_batches(shape, count=2, classes=10, seed=0):
    """`count` batches of normal images of `shape` and random labels, drawn with `seed`."""
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(shape, generator=g), torch.randint(0, classes, (shape[0],), generator=g)) for _ in range(count)
    ]


@pytest.fixture
def tiny_net(tiny_space: SearchSpace) -> nn.Module:
    """A tiny-space QuadraNet with blocks of two kernels and an identity, initialised as stand-alone training does."""
    blocks = [c for c in tiny_space.choices if not c.is_identity]
    arch = Arch(tuple(IDENTITY if i == 2 else blocks[i % len(blocks)] for i in range(tiny_space.num_blocks)))
    return standalone_net(tiny_space, arch, 10, 0.1)


def test_registry_names_every_proxy():
    assert list(PROXIES) == ["params", "macs", "synflow", "zico", "meco", "meco_opt"]


@pytest.mark.parametrize("name", list(PROXIES))
@pytest.mark.parametrize("training", [True, False])
def test_proxy_is_finite_deterministic_and_leaves_the_net_as_it_was(tiny_net, name, training):
    tiny_net.train(training)
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    flags = [p.requires_grad for p in tiny_net.parameters()]
    batches = random_batches((8, 3, 32, 32))
    first, second = PROXIES[name](tiny_net, batches), PROXIES[name](tiny_net, batches)
    assert math.isfinite(first) and first == pytest.approx(second, rel=1e-6, abs=1e-9)
    after = tiny_net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training == training for m in tiny_net.modules())
    assert [p.requires_grad for p in tiny_net.parameters()] == flags
    assert all(p.grad is None for p in tiny_net.parameters())
    assert not tiny_net._forward_hooks and all(not m._forward_hooks for m in tiny_net.modules())


def test_params_is_the_sum_of_numel(tiny_net):
    assert params(tiny_net, random_batches((2, 3, 32, 32))) == sum(p.numel() for p in tiny_net.parameters())


def test_macs_of_a_conv_and_a_linear_layer():
    conv = nn.Conv2d(2, 4, 3, padding=1)  # 4 outputs x 2 inputs x 9 taps at each of 6 x 6 positions
    assert macs(conv, random_batches((5, 2, 6, 6), count=1)) == 4 * 2 * 9 * 36
    assert macs(nn.Linear(5, 3), random_batches((7, 5), count=1)) == 15  # one image, not the batch


@pytest.mark.parametrize("depth", [2, 3])
def test_synflow_of_a_linear_chain_is_depth_times_r(depth):
    """Bias-free linear layers: R = 1ᵀ|W_L|...|W_1|1, and each layer's Σ|θ ⊙ ∂R/∂θ| is R, so SynFlow = depth x R."""
    torch.manual_seed(1)
    sizes = [3, 4, 5, 2][: depth + 1]
    net = nn.Sequential(*(nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:])))
    signed = [layer.weight.detach().clone() for layer in net]
    assert any((w < 0).any() for w in signed)
    r = torch.ones(sizes[0], dtype=torch.float64)
    for w in signed:
        r = w.double().abs() @ r
    assert synflow(net, random_batches((6, sizes[0]), count=1)) == pytest.approx(depth * float(r.sum()), rel=1e-12)
    assert all(torch.equal(layer.weight, w) for layer, w in zip(net, signed))  # signs kept


def test_synflow_uses_no_data():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert synflow(net, random_batches((2, 4), seed=0)) == synflow(net, random_batches((9, 4), seed=5))


def test_zico_of_softmax_regression_matches_the_closed_form_gradient():
    """For logits W x + b and mean cross-entropy over N images, ∂L/∂W = (softmax - onehot)ᵀ X / N."""
    torch.manual_seed(2)
    layer = nn.Linear(4, 3)
    batches = random_batches((8, 4), count=3, classes=3, seed=1)
    grads = []
    with torch.no_grad():
        for x, y in batches:
            p = torch.softmax(layer(x), dim=1).double()
            grads.append((p - F.one_hot(y, 3).double()).T @ x.double() / len(x))
    g = torch.stack(grads)
    expected = math.log(float((g.abs().mean(0) / g.std(0, correction=0)).sum()))  # the bias is no weight layer
    assert zico(layer, batches) == pytest.approx(expected, rel=1e-5)


def test_zico_needs_two_batches_and_skips_gradients_that_do_not_vary():
    layer = nn.Linear(4, 3)
    batch = random_batches((8, 4), count=1, classes=3)
    with pytest.raises(ValueError, match="at least 2 batches"):
        zico(layer, batch)
    assert zico(layer, batch * 2) == 0.0  # one batch twice: every std is 0, every weight left out


def correlated_rows(r: float, n: int = 64) -> torch.Tensor:
    """Two rows whose Pearson correlation is exactly `r`: r a + sqrt(1 - r²) b for orthonormal, centred a, b."""
    x = torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a, b = torch.linalg.qr(x - x.mean(0))[0].T  # combinations of centred columns stay centred
    return torch.stack([a, r * a + math.sqrt(1 - r * r) * b])


@pytest.mark.parametrize("r", [0.0, 0.3, -0.8, 1.0])
def test_min_correlation_eigenvalue_of_two_channels_is_one_minus_abs_r(r):
    assert min_correlation_eigenvalue(correlated_rows(r)) == pytest.approx(1 - abs(r), abs=1e-9)


def test_min_correlation_eigenvalue_is_zero_with_no_more_observations_than_channels():
    assert min_correlation_eigenvalue(torch.randn(10, 10)) == 0.0
    assert min_correlation_eigenvalue(torch.randn(10, 11)) > 0.0
    constant = torch.randn(3, 50)
    constant[1] = 2.0  # a constant channel has no correlation: its row is 0
    assert min_correlation_eigenvalue(constant) == pytest.approx(0.0, abs=1e-12)


def conv_1x1(weights: list[list[float]]) -> nn.Conv2d:
    w = torch.tensor(weights)
    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w[:, :, None, None])
    return conv


def test_meco_of_perfectly_correlated_channels_is_zero():
    net = conv_1x1([[1.0], [2.0], [-3.0]])  # every output channel a multiple of the one input channel
    batches = random_batches((4, 1, 8, 8), count=1)
    assert meco(net, batches) == pytest.approx(0.0, abs=1e-9)
    assert meco_opt(net, batches) == pytest.approx(0.0, abs=1e-9)


def test_meco_of_independent_channels_is_near_one_per_layer():
    eye = [[float(i == j) for j in range(3)] for i in range(3)]
    net = nn.Sequential(conv_1x1(eye), conv_1x1(eye))  # two layers passing 3 independent channels through
    score = meco(net, random_batches((16, 3, 16, 16), count=1))  # 4,096 observations of 3 channels
    assert 2 * 0.9 < score <= 2.0


def test_meco_pools_every_image_of_the_first_batch():
    net = conv_1x1([[1.0, 0.0], [0.0, 1.0]])
    x = torch.randn(2, 2, 1, 1, generator=torch.Generator().manual_seed(0))  # one position per image
    assert meco(net, [(x[:1], torch.zeros(1))]) == 0.0  # one observation of 2 channels
    assert meco(net, [(x, torch.zeros(2))]) == 0.0  # two: still no more than the channels
    many = torch.randn(64, 2, 1, 1, generator=torch.Generator().manual_seed(0))
    assert meco(net, [(many, torch.zeros(64))]) > 0.5


def test_meco_opt_samples_channels_and_scales_by_their_share():
    eye = [[float(i == j) for j in range(16)] for i in range(16)]
    net = conv_1x1(eye)
    batches = random_batches((16, 16, 16, 16), count=1)  # 4,096 observations of 16 independent channels
    assert meco_opt(net, batches, channels=16) == meco(net, batches)
    score = meco_opt(net, batches, channels=8, seed=1)
    assert 2 * 0.85 < score <= 2.0  # 16 / 8 x λ_min of 8 near-independent channels
    assert meco_opt(net, batches, channels=8, seed=1) == score


def test_the_layers_are_every_conv_and_linear(tiny_net):
    blocks = sum(len(stage) for stage in tiny_net.stages)
    assert len(weight_layers(tiny_net)) == 1 + 5 * blocks + len(tiny_net.downsamples) + 1


def test_batches_of_draws_disjoint_seeded_batches():
    data = TensorDataset(torch.arange(20.0)[:, None], torch.arange(20))
    first = batches_of(data, 6, 3, seed=0)
    assert [len(y) for _, y in first] == [6, 6, 6]
    labels = torch.cat([y for _, y in first])
    assert len(set(labels.tolist())) == 18 and all(torch.equal(x[:, 0].long(), y) for x, y in first)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, batches_of(data, 6, 3, seed=0)))
    assert not torch.equal(labels, torch.cat([y for _, y in batches_of(data, 6, 3, seed=1)]))
    with pytest.raises(ValueError, match="need 24 images"):
        batches_of(data, 6, 4, seed=0)
