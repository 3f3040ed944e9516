"""Stand-alone training for the evidence scripts: one recipe, a process pool, a resumable store.

`bench_enhancer.py` and `search_vs_baselines.py` train archs from random init with the
supernet's optimizer and schedule (`quadnas.supernet.standalone.standalone_accuracy`) on
mnist5k at 32 px, and keep every (arch, seed) accuracy in their JSON as it finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import numpy as np
import torch

from quadnas.data import load_dataset
from quadnas.space import SearchSpace
from quadnas.supernet.standalone import standalone_accuracy
from quadnas.supernet.train import TrainConfig, steps_for

RECIPE = {"data": "mnist5k", "resolution": 32, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05, "warmup": 0.1}
Store = dict[str, dict[str, float]]  # arch text -> training seed -> validation accuracy


def train(job: tuple[str, str, int, float, str]) -> float:
    """Validation accuracy of one arch of a space trained stand-alone with one seed, on one thread."""
    space_name, arch_text, seed, epochs, data_name = job
    torch.set_num_threads(1)
    space = SearchSpace.load(space_name)
    data = load_dataset(data_name, RECIPE["resolution"], seed=0, channels=space.config.in_channels)
    config = TrainConfig(
        batch_size=RECIPE["batch_size"],
        lr=RECIPE["lr"],
        weight_decay=RECIPE["weight_decay"],
        seed=seed,
        memory_efficient=False,
        resolution=RECIPE["resolution"],
        augment="none",  # the stores' accuracies were all measured without augmentation
    )
    steps = steps_for(epochs, len(data.train), config.batch_size)
    return standalone_accuracy(space, space.parse(arch_text), data, config, steps, RECIPE["warmup"])


def train_all(
    space: str,
    archs: Sequence[str],
    seeds: Sequence[int],
    epochs: float,
    workers: int,
    store: Store,
    save: Callable[[], None],
    data: str = RECIPE["data"],
) -> None:
    """Train every (arch, seed) not yet in `store` in `workers` processes, calling `save` after each."""
    todo = [(a, s) for a in dict.fromkeys(archs) for s in seeds if str(s) not in store.get(a, {})]
    if not todo:
        return
    with ProcessPoolExecutor(min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        running = {pool.submit(train, (space, a, s, epochs, data)): (a, s) for a, s in todo}
        for done in as_completed(running):
            arch, seed = running[done]
            store.setdefault(arch, {})[str(seed)] = acc = done.result()
            save()
            print(f"  {arch} seed {seed}: {acc:.4f}", flush=True)


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
