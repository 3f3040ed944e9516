"""Stand-alone accuracies of many (arch, seed) pairs, trained in worker processes and kept as they finish.

The benchmarks that judge archs by training them (searched vs hand-designed, QuadEnhancer on or
off) train each arch from random init with several seeds (`standalone.standalone_accuracy`),
one process per training on one thread, and keep every accuracy in a `Store` that their JSON
holds: a rerun trains only what the store lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np
import torch

from quadnas.data import load_dataset
from quadnas.space import SearchSpace
from quadnas.supernet.recipe import TrainConfig
from quadnas.supernet.standalone import standalone_accuracy
from quadnas.supernet.trainer import steps_for

Store = dict[str, dict[str, float]]  # arch text -> training seed (as text) -> validation accuracy


@dataclass(frozen=True)
class StandaloneRecipe:
    """The data and the supernet's optimizer settings every arch trains with (field order: the JSON's)."""

    data: str = "mnist5k"
    resolution: int = 32
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: float = 0.1  # fraction of the steps


def train_one(space_name: str, arch_text: str, seed: int, epochs: float, recipe: StandaloneRecipe) -> float:
    """Validation accuracy of one arch of a space trained stand-alone with one seed, on one thread."""
    torch.set_num_threads(1)
    space = SearchSpace.load(space_name)
    data = load_dataset(recipe.data, recipe.resolution, seed=0, channels=space.config.in_channels)
    config = TrainConfig(
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        seed=seed,
        memory_efficient=False,
        resolution=recipe.resolution,
        augment="none",  # the stores' accuracies were all measured without augmentation
    )
    steps = steps_for(epochs, len(data.train), config.batch_size)
    return standalone_accuracy(space, space.parse(arch_text), data, config, steps, recipe.warmup)


def train_missing(
    space: str,
    archs: Sequence[str],
    seeds: Sequence[int],
    epochs: float,
    workers: int,
    store: Store,
    on_done: Callable[[str, int, float], None],
    recipe: StandaloneRecipe = StandaloneRecipe(),
) -> None:
    """Train every (arch, seed) not yet in `store` in `workers` processes; each accuracy goes into `store`
    as it finishes, then to `on_done(arch, seed, accuracy)` (to save the store and report it)."""
    todo = [(a, s) for a in dict.fromkeys(archs) for s in seeds if str(s) not in store.get(a, {})]
    if not todo:
        return
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        running = {pool.submit(train_one, space, a, s, epochs, recipe): (a, s) for a, s in todo}
        for done in as_completed(running):
            arch, seed = running[done]
            store.setdefault(arch, {})[str(seed)] = accuracy = done.result()
            on_done(arch, seed, accuracy)


def summary(store: Store, archs: Sequence[str]) -> dict[str, Any]:
    """Mean and spread of the per-arch mean accuracies, and the mean seed-to-seed spread."""
    per_arch = [np.mean(list(store[a].values())) for a in archs]
    seed_sd = [np.std(list(store[a].values()), ddof=1) for a in archs if len(store[a]) > 1]
    return {
        "mean": round(float(np.mean(per_arch)), 4),
        "sd_between_archs": round(float(np.std(per_arch, ddof=1)), 4) if len(per_arch) > 1 else None,
        "sd_between_seeds": round(float(np.mean(seed_sd)), 4) if seed_sd else None,
        "archs": len(archs),
    }
