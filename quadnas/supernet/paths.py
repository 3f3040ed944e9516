"""Path sampling: which network paths one training step trains, the one thing training methods change.

A `PathSampler` draws a step's paths from the trainer's seeded `random.Random` (every rank draws
the same). `None` is the whole network (stand-alone training: `model(x)`), an `Arch` a supernet
path (`model(x, arch)`). With `distil`, paths after the first learn from the first path's soft
predictions instead of the labels (in-place distillation).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from quadnas.space import Arch, SearchSpace

Path = Arch | None


class PathSampler:
    """One path per step: the whole network (stand-alone training)."""

    distil = False

    def paths(self, rng: random.Random) -> list[Path]:
        return [None]

    def per_step(self) -> int:
        """Paths trained per step (each a forward and backward pass)."""
        return 1


@dataclass
class Uniform(PathSampler):
    """One uniformly sampled arch per step (single-path one-shot)."""

    space: SearchSpace

    def paths(self, rng: random.Random) -> list[Path]:
        return [self.space.sample(rng)]


@dataclass
class Sandwich(PathSampler):
    """The largest, the smallest and `random_paths` random archs per step; `distil`: in-place distillation."""

    space: SearchSpace
    random_paths: int
    distil: bool = False

    def paths(self, rng: random.Random) -> list[Path]:
        randoms: list[Path] = [self.space.sample(rng) for _ in range(self.random_paths)]
        return [self.space.largest(), self.space.smallest(), *randoms]

    def per_step(self) -> int:
        return 2 + self.random_paths


@dataclass
class Fair(PathSampler):
    """FairNAS strict fairness: path m takes the m-th choice of a fresh random permutation of every block's choices."""

    space: SearchSpace

    def paths(self, rng: random.Random) -> list[Path]:
        return list(fairnas_paths(self.space, rng))

    def per_step(self) -> int:
        return len(self.space.choices)


def fairnas_paths(space: SearchSpace, rng: random.Random) -> list[Arch]:
    """FairNAS strict fairness: path m takes the m-th choice of a fresh random permutation per block."""
    perms = [rng.sample(space.choices, len(space.choices)) for _ in range(space.num_blocks)]
    return [Arch(tuple(perm[m] for perm in perms)) for m in range(len(space.choices))]
