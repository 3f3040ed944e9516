"""Zero-cost proxies: scores of an untrained network that are meant to rank archs like trained accuracy.

Every proxy is a function `(net, batches) -> float` that leaves `net` as it was (its weights,
gradients and mode: the ones that need gradients or change weights work on a copy); `PROXIES`
names them. `batches` are `(images, labels)` mini-batches of real data (`batches_of`); a proxy
uses what its definition needs of them:

- `params`: the number of parameters; `macs`: multiply-accumulates of one forward pass of
  one image (`nn.stats.model_stats`; FLOPs = 2 x MACs, the same ranking).
- `synflow` (Tanaka et al., NeurIPS 2020): data-free; only the first batch's image shape.
- `zico` (Li et al., ICLR 2023): the gradients of every batch (at least 2).
- `meco`, `meco_opt` (Jiang et al., NeurIPS 2023): the feature maps of the first batch.

"Layers" are the modules that hold the weights: every `nn.Conv2d` and `nn.Linear` (in a
`QuadraNet`: the stem and downsample convs, each block's three depthwise convs `dw_a`,
`dw_b`, `dw_c` and its pointwise convs `pw1`, `pw2`, and the head's classifier). MeCo uses
the convs' outputs only: the classifier's output has no spatial positions.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from quadnas.data.split import take
from quadnas.nn.stats import model_stats

Batch = tuple[torch.Tensor, torch.Tensor]  # images (N, C, H, W), integer labels (N,)
PROXY_BATCHES = 2  # seeded training batches each proxy was scored on in docs/benchmarks.md
Proxy = Callable[[nn.Module, Sequence[Batch]], float]


def batches_of(data: Dataset[tuple[torch.Tensor, torch.Tensor]], batch_size: int, count: int, seed: int) -> list[Batch]:
    """`count` disjoint mini-batches of `batch_size` images (eval views), drawn from `data` by a permutation
    seeded with `seed`; only those images are decoded."""
    n = len(data)  # type: ignore[arg-type]
    if count * batch_size > n:
        raise ValueError(f"{count} batches of {batch_size} need {count * batch_size} images; the data has {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: count * batch_size]
    return [take(data, i) for i in order.split(batch_size)]


def weight_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The layers every proxy counts: each `nn.Conv2d` and `nn.Linear`, in module order."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _one_image_shape(batches: Sequence[Batch]) -> tuple[int, ...]:
    return (1, *batches[0][0].shape[1:])


def params(net: nn.Module, batches: Sequence[Batch]) -> float:
    """The number of parameters (every tensor of `net.parameters()`)."""
    return float(model_stats(net, _one_image_shape(batches))[0])


def macs(net: nn.Module, batches: Sequence[Batch]) -> float:
    """Multiply-accumulates of a forward pass of one image of the first batch's shape (convolutions and matmuls)."""
    return float(model_stats(net, _one_image_shape(batches))[1])


def synflow(net: nn.Module, batches: Sequence[Batch]) -> float:
    """SynFlow (Tanaka et al. 2020), summed over the network as in Abdelfattah et al. (ICLR 2021).

    On a float64 copy of `net` whose parameters are all replaced by their absolute values
    |θ| (the original keeps its signs), R = sum of the output for one all-ones input of the
    first batch's image shape; the score is sum over the weights θ of every layer
    (`weight_layers`) of |θ ⊙ ∂R/∂θ|. No data is used. SynFlow was defined for networks
    without normalisation; a QuadraNet's LayerNorms stay in the copy and still normalise.
    """
    model = copy.deepcopy(net).double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones(_one_image_shape(batches), dtype=torch.float64, device=batches[0][0].device)
    model(ones).sum().backward()
    with torch.no_grad():
        return float(
            sum(
                float((layer.weight * layer.weight.grad).abs().sum())
                for layer in weight_layers(model)
                if layer.weight.grad is not None
            )
        )


def zico(net: nn.Module, batches: Sequence[Batch]) -> float:
    """ZiCo (Li et al., ICLR 2023), as in the authors' code.

    On a copy of `net` in training mode, the cross-entropy gradient g of each weight of every
    layer (`weight_layers`) is taken on each of the batches; per layer,
    log(Σ over its weights of mean(|g|) / std(g)), mean and (population) std across the
    batches, summed over the layers. As in the authors' code, weights whose gradient does not
    vary across the batches (std 0) are left out, and so is a layer whose sum is 0.
    """
    if len(batches) < 2:
        raise ValueError(f"ZiCo needs at least 2 batches to take a gradient's std; got {len(batches)}")
    model = copy.deepcopy(net).train()
    layers = weight_layers(model)
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for per_batch, layer in zip(grads, layers):
            g = layer.weight.grad
            per_batch.append((torch.zeros_like(layer.weight) if g is None else g.detach()).flatten())
    total = 0.0
    for per_batch in grads:
        g = torch.stack(per_batch).double()
        std = g.std(dim=0, correction=0)
        varies = std > 0
        ratio = float((g.abs().mean(dim=0)[varies] / std[varies]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


def min_correlation_eigenvalue(features: torch.Tensor) -> float:
    """The smallest eigenvalue of the Pearson correlation matrix of the rows of `features` (C, M).

    Rows are channels, columns observations. A constant channel has no correlation: its row
    and column are 0, as in MeCo's code, so the smallest eigenvalue is 0. With M <= C
    observations the matrix has rank at most M - 1 < C, so the answer is exactly 0 and no
    eigenvalues are computed.
    """
    channels, observations = features.shape
    if observations <= channels:
        return 0.0
    corr = torch.corrcoef(features.double())
    corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0).reshape(channels, channels)
    return float(torch.linalg.eigvalsh(corr)[0])


def _meco(net: nn.Module, batches: Sequence[Batch], channels: int | None, seed: int) -> float:
    """MeCo summed over every conv's output on the first batch; `channels` sampled per layer if given."""
    model = copy.deepcopy(net)
    generator = torch.Generator().manual_seed(seed)
    scores: list[float] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        c = output.shape[1]
        features = output.detach().transpose(0, 1).reshape(c, -1)  # channel x (image, position)
        if channels is None or c <= channels:
            scores.append(min_correlation_eigenvalue(features))
            return
        rows = torch.randperm(c, generator=generator)[:channels].to(features.device)
        scores.append(c / channels * min_correlation_eigenvalue(features[rows]))

    for layer in weight_layers(model):
        if isinstance(layer, nn.Conv2d):
            layer.register_forward_hook(hook)
    with torch.no_grad():
        model(batches[0][0])
    return float(sum(scores))


def meco(net: nn.Module, batches: Sequence[Batch]) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): Σ over layers of λ_min of the Pearson
    correlation matrix of the layer's channels.

    Layers: the output of every `nn.Conv2d`. Each channel's features are its values at every
    position of every image of the first batch (the paper's code takes one image; at 32 px the
    maps of a quadranet-t network have at most 8 x 8 positions, fewer than their 96 or more
    channels, so every one-image matrix would be singular). A layer with no more observations than channels
    (images x positions <= channels) contributes exactly 0.
    """
    return _meco(net, batches, None, 0)


def meco_opt(net: nn.Module, batches: Sequence[Batch], channels: int = 8, seed: int = 0) -> float:
    """MeCo_opt (Jiang et al., NeurIPS 2023): MeCo with `channels` channels per layer drawn at
    random (a generator seeded with `seed`), each layer's λ_min scaled by its channel count / `channels`.

    The same layers and the same features (first batch, all images and positions) as `meco`;
    a layer with at most `channels` channels uses them all, unscaled.
    """
    return _meco(net, batches, channels, seed)


PROXIES: dict[str, Proxy] = {
    "params": params,
    "macs": macs,
    "synflow": synflow,
    "zico": zico,
    "meco": meco,
    "meco_opt": meco_opt,
}
