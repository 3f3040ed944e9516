"""Finalists judged by training: the search's last word goes to short stand-alone training, not the supernet.

A supernet's scores rank archs only roughly where they differ (docs/benchmarks.md), so after the
study the `count` best distinct archs under every budget, together with the uniform hand design of
each kernel/expansion family that fits (one choice in every active block, every stage the same
share of its depth, the slowest such arch within every budget), are each trained from random init
for the same short budget; the two most accurate on the validation split train once more with the
next seed, and the better of them by the mean over both seeds becomes the search's best. With the
hand designs among the finalists, the search picks one of them unless short training finds an arch
that beats them all.

Every training has a fixed seed and the supernet's optimizer and schedule, so its accuracy
depends only on (space, data, arch, recipe): it is kept in a JSON file per space and data under
the runs folder, and a rerun, another budget or another search seed reuses it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from quadnas._search.config import SearchConfig
from quadnas._search.results import Candidate
from quadnas.accelerator import torch_device
from quadnas.data import Dataset
from quadnas.portable.files import atomic_write
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.recipe import QUICK_DATA, SEARCH_EPOCHS, TrainConfig
from quadnas.supernet.standalone import standalone_accuracy
from quadnas.supernet.train import steps_for

# The defaults (docs/benchmarks.md, "A judge as long as the ground truth"): the best DEFAULT_COUNT archs of the
# study and the hand designs, DEFAULT_EPOCHS each, as long as the search's supernet trains (shorter training
# orders finalists a point apart no better than chance); none on the quick demo sets, where short training
# cannot tell finalists apart.
DEFAULT_COUNT = 3
DEFAULT_EPOCHS = float(SEARCH_EPOCHS)  # a float, as recipe keys of cached accuracies hold it
# The judge's seed (and the next, for its best RECHECKED): seeds that the evidence scripts' stand-alone seeds
# (0, 1, 2) do not use, so a pick is scored on trainings independent of the ones that picked it.
JUDGE_SEED = 3
# The judge's best this many finalists train once more with the next seed and are ordered by their mean over both:
# among finalists a point or two apart, one seed's lead is often luck (docs/benchmarks.md, "A second seed for the
# judge's best two").
RECHECKED = 2
# Finalists differ from each other in at least this many blocks of the networks they build: a study's best archs
# are often one network with a block changed, which a judge of one training cannot tell apart (docs/benchmarks.md,
# "Finalists that differ in at least 3 blocks").
MIN_BLOCKS_APART = 3


@dataclass(frozen=True)
class FinalistRecipe:
    """How every finalist trains: stand-alone from random init, the supernet's optimizer and schedule."""

    epochs: float
    seed: int = JUDGE_SEED
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1

    def key(self) -> str:
        """A short name of the recipe: accuracies cached under another recipe are not reused."""
        text = json.dumps(self.__dict__, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def finalist_settings(config: SearchConfig, data: Dataset) -> tuple[int, FinalistRecipe]:
    """How many of the study's best archs become finalists (0: no finalists, not even hand designs) and their
    recipe: the config's, else the defaults for the data."""
    count = config.finalists
    if count is None:
        count = 0 if data.name in QUICK_DATA else DEFAULT_COUNT
    return count, FinalistRecipe(epochs=config.finalist_epochs or DEFAULT_EPOCHS)


def pick_finalists(
    ranked: Sequence[Candidate],
    hand: Sequence[Candidate],
    count: int,
    network: Callable[[Arch], Arch],
    apart: int = MIN_BLOCKS_APART,
) -> list[Candidate]:
    """The `count` best of `ranked` (best first) whose networks differ from every better pick's in at least `apart`
    blocks, then every hand design whose network is not among them. `network`: the network an arch builds
    stand-alone (`SearchSpace.network`: archs that differ only in where their identity blocks sit train alike)."""
    top: list[Candidate] = []
    built: list[Arch] = []
    for c in ranked:
        if len(top) == count:
            break
        mine = network(c.arch)
        if all(blocks_apart(mine, other) >= apart for other in built):
            built.append(mine)
            top.append(c)
    return top + [c for c in hand if network(c.arch) not in built]


def blocks_apart(a: Arch, b: Arch) -> int:
    """How many blocks two archs of one space choose differently."""
    return sum(x != y for x, y in zip(a.blocks, b.blocks, strict=True))


class FinalistCache:
    """Finalists' stand-alone accuracies of one space and dataset, by recipe and arch, in one JSON file.

    Workers of one study (or searches of other budgets) may judge at once: every write re-reads the
    file under a lock and replaces it atomically, so no one's accuracy is lost.
    """

    def __init__(self, folder: Path, space: SearchSpace, data: Dataset):
        self.path = folder / f"{space.name}-{space.fingerprint()}-{data.name}-{data.fingerprint}.json"

    def _read(self) -> dict[str, dict[str, float]]:
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def get(self, recipe: FinalistRecipe, arch: str) -> float | None:
        value = self._read().get(recipe.key(), {}).get(arch)
        return float(value) if isinstance(value, (int, float)) else None

    def put(self, recipe: FinalistRecipe, arch: str, value: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_suffix(".lock")):
            stored = self._read()
            stored.setdefault(recipe.key(), {})[arch] = value
            atomic_write(self.path, json.dumps(stored, indent=1, sort_keys=True))


def trained_accuracy(
    space: SearchSpace, arch: Arch, data: Dataset, recipe: FinalistRecipe, device: str, progress: Progress | None
) -> float:
    """Validation accuracy of `arch` trained stand-alone from random init with `recipe` on `device`."""
    config = TrainConfig(
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        seed=recipe.seed,
        augment="none",  # random crops cost accuracy in runs this short
    )
    steps = steps_for(recipe.epochs, len(data.train), recipe.batch_size)
    return standalone_accuracy(
        space, arch, data, config, steps, recipe.warmup_fraction, device=torch_device(device), progress=progress
    )


def cached_accuracy(
    space: SearchSpace,
    arch: Arch,
    data: Dataset,
    recipe: FinalistRecipe,
    cache: FinalistCache,
    device: str = "cpu",
    progress: Progress | None = None,
    train: Callable[..., float] = trained_accuracy,
) -> float:
    """`arch`'s accuracy under `recipe`: the cached one, else trained (by `train`) and cached."""
    value = cache.get(recipe, str(arch))
    if value is None:
        value = train(space, arch, data, recipe, device, progress)
        cache.put(recipe, str(arch), value)
    return value


def judge(
    finalists: Sequence[Candidate],
    space: SearchSpace,
    data: Dataset,
    recipe: FinalistRecipe,
    cache: FinalistCache,
    progress: Progress,
    device: str = "cpu",
    train: Callable[..., float] = trained_accuracy,
    recheck: int = RECHECKED,
) -> list[Candidate]:
    """Every finalist with its short-training accuracy (cached ones are not trained again), the most accurate
    first; ties keep the given order (the search's best before the hand designs). The best `recheck` of them
    train again with the next seed and lead, ordered by their mean over both seeds."""
    again = replace(recipe, seed=recipe.seed + 1)
    recheck = min(recheck, len(finalists))
    todo = [c for c in finalists if cache.get(recipe, str(c.arch)) is None]
    steps = steps_for(recipe.epochs, len(data.train), recipe.batch_size)
    reused = len(finalists) - len(todo)
    progress.note(
        f"training {len(todo)} finalists stand-alone for {recipe.epochs:g} epoch{'' if recipe.epochs == 1 else 's'} "
        f"each, then the best {recheck} once more with the next seed (at most {(len(todo) + recheck) * steps} steps "
        "in all"
        + (f"; {reused} more were trained before and are reused" if reused else "")
        + "); the most accurate by the mean over its seeds becomes best.yaml (--finalists 0 skips this)"
    )
    with progress.task("finalists", len(finalists) + recheck, unit="training") as task:

        def scored(c: Candidate, with_recipe: FinalistRecipe) -> float:
            value = cached_accuracy(space, c.arch, data, with_recipe, cache, device, progress, train)
            task.advance(1, f"{c.arch}, seed {with_recipe.seed}: {value:.4f}")
            return value

        judged = ordered([replace(c, trained_seeds=(scored(c, recipe),)) for c in finalists])
        for i, c in enumerate(judged[:recheck]):
            judged[i] = replace(c, trained_seeds=(*c.trained_seeds, scored(c, again)))
    return ordered(judged[:recheck]) + judged[recheck:]


def ordered(judged: list[Candidate]) -> list[Candidate]:
    """The most accurate after short training first; ties keep the given order."""
    return [c for _, c in sorted(enumerate(judged), key=lambda p: (-(p[1].trained or 0.0), p[0]))]
