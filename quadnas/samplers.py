"""Optuna samplers for architecture search: the four named ones and the guided wrapper."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import optuna

from quadnas.errors import QuadnasError

SAMPLERS = ("tpe", "nsga2", "gp", "random")


Admits = Callable[[dict[str, np.ndarray]], np.ndarray]  # candidates (param -> choice indices) -> fits


class FeasibleTPESampler(optuna.samplers.TPESampler):
    """TPE whose acquisition ranks only the candidates the latency predictor admits.

    TPE draws `n_ei_candidates` candidates from its model of the good trials and keeps the
    one of best expected improvement; here a candidate over the budget scores -inf first,
    so the best feasible candidate wins (the best of all when none fits: the guided wrapper
    then redraws). `admits` maps candidates, as choice indices per parameter, to a mask.
    """

    def __init__(self, admits: Admits, **kwargs):
        super().__init__(**kwargs)
        self._admits = admits

    def _compute_acquisition_func(self, samples, mpe_below, mpe_above):  # noqa: ANN001, ANN202 (Optuna's)
        values = super()._compute_acquisition_func(samples, mpe_below, mpe_above)
        fits = self._admits(samples)
        return np.where(fits, values, -np.inf) if fits.any() else values


def make_sampler(name: str, seed: int, admits: Admits | None = None) -> optuna.samplers.BaseSampler:
    """The named sampler; TPE weighs only candidates `admits` accepts, where given."""
    if name == "tpe":
        # A low prior weight keeps proposals near the good archs seen: on the vpu and gpu headline
        # budgets, 0.1 (vs the default 1.0) took feasible proposals from ~15% to ~50%. Optuna 5
        # deprecates the argument (removal in 6, hence `optuna<6` in pyproject).
        settings = dict(seed=seed, multivariate=True, constant_liar=True, prior_weight=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            if admits is None:
                return optuna.samplers.TPESampler(**settings)
            return FeasibleTPESampler(admits, **settings)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise QuadnasError(f"unknown sampler '{name}': use one of {', '.join(SAMPLERS)}")


class GuidedSampler(optuna.samplers.BaseSampler):
    """Wraps a sampler: trials 0..n-1 take the seed params, later ones ask the base sampler.

    Everything is keyed by trial number, which the storage hands out once: the seeds, and
    the base sampler's random state (a fresh base seeded with `(seed, number)` per trial),
    so workers sharing a study never repeat each other's proposals, while one worker's
    run stays reproducible. With `fits`, a joint proposal the predictor rejects is redrawn
    (up to `redraws` times): the base's proposal distribution restricted to archs within
    the budget. A proposal that never fits goes through; the latency constraint marks it.
    """

    def __init__(self, make_base: Callable[[int], optuna.samplers.BaseSampler], seed: int,
                 seeds: list[dict[str, str]], fits: Callable[[dict[str, str]], bool] | None = None,
                 redraws: int = 50):
        self.make_base, self.seed, self.seeds, self.fits, self.redraws = make_base, seed, seeds, fits, redraws
        self._bases: dict[int, optuna.samplers.BaseSampler] = {}

    def _base(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._bases:
            self._bases[trial.number] = self.make_base(self.seed * 1_000_003 + trial.number)
        return self._bases[trial.number]

    def _seed(self, trial: optuna.trial.FrozenTrial) -> dict[str, str] | None:
        return self.seeds[trial.number] if trial.number < len(self.seeds) else None

    def infer_relative_search_space(self, study, trial):
        return {} if self._seed(trial) else self._base(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        if self._seed(trial):
            return {}
        base = self._base(trial)
        params = base.sample_relative(study, trial, search_space)
        for _ in range(self.redraws if self.fits and len(params) == len(search_space) > 0 else 0):
            if self.fits(params):
                break
            params = base.sample_relative(study, trial, search_space)
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        seed = self._seed(trial)
        if seed:
            return seed[param_name]
        return self._base(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self._base(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self._bases.pop(trial.number, self._base(trial)).after_trial(study, trial, state, values)
