"""`--rerank PROXY`: a zero-cost proxy as the supernet's equal partner in picking the best arch.

The study runs as always (the supernet scores every proposal); then each distinct arch under
every budget gets the proxy's score, on the network its stand-alone training would start from
(full width, seeded) and two seeded training batches: the setting in which
`scripts/rank_correlation.py` scored the proxies and their pairs with the supernet
(docs/benchmarks.md). The archs are ordered by the mean of their two ranks, by supernet
accuracy and by the proxy, higher first; ties keep the supernet's order.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from quadnas._search.results import Candidate
from quadnas.data import Dataset
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.proxies import PROXIES, PROXY_BATCHES, batches_of
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.standalone import standalone_net

BATCH_SIZE, SEED = 64, 0  # rank_correlation.py's defaults: the setting the proxies were measured in


def proxy_scores(space: SearchSpace, archs: list[Arch], data: Dataset, proxy: str, progress: Progress) -> list[float]:
    """`proxy` of each arch's seeded stand-alone network at initialisation, on the same training batches
    (smaller ones when the training split holds fewer than `PROXY_BATCHES` x `BATCH_SIZE` images)."""
    batch_size = min(BATCH_SIZE, len(data.train) // PROXY_BATCHES)
    batches = batches_of(data.train, batch_size, PROXY_BATCHES, SEED)
    layer_scale = TrainConfig().layer_scale_init
    scores = []
    with progress.task(f"{proxy} of the archs under the budget", len(archs), unit="arch") as task:
        for arch in archs:
            torch.manual_seed(SEED)
            net = standalone_net(space, arch, data.num_classes, layer_scale)
            scores.append(PROXIES[proxy](net, batches))
            task.advance()
    return scores


def rerank(
    ranked: list[Candidate], proxy: str, space: SearchSpace, data: Dataset, progress: Progress
) -> list[Candidate]:
    """`ranked` (distinct archs, most accurate first) reordered by the mean of the supernet's and the proxy's
    ranks; each candidate carries its proxy score."""
    scores = proxy_scores(space, [c.arch for c in ranked], data, proxy, progress)
    accuracy = pd.Series([c.evaluated_accuracy() for c in ranked]).rank()
    mean_rank = (accuracy + pd.Series(scores).rank()) / 2
    order = sorted(range(len(ranked)), key=lambda i: (-mean_rank[i], i))
    return [replace(ranked[i], proxy=scores[i]) for i in order]
