"""Optuna samplers for architecture search: the four named ones and the guided wrapper."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.search_space import intersection_search_space

from quadnas._search.config import SearchConfig
from quadnas._search.names import SAMPLERS
from quadnas._search.targets import Targets
from quadnas.errors import QuadnasError
from quadnas.space import Arch, SearchSpace

if TYPE_CHECKING:
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

SEED_TRIALS = 10  # predictor-chosen archs a new study starts with (TPE's start-up count)


Admits = Callable[[dict[str, np.ndarray]], np.ndarray]  # candidates (param -> choice indices) -> fits


class FeasibleTPESampler(optuna.samplers.TPESampler):
    """TPE whose acquisition ranks only the candidates the latency predictor admits.

    TPE draws `n_ei_candidates` candidates from its model of the good trials and keeps the
    one of best expected improvement; here a candidate over the budget scores -inf first,
    so the best feasible candidate wins (the best of all when none fits: the guided wrapper
    then redraws). `admits` maps candidates, as choice indices per parameter, to a mask.
    """

    def __init__(self, admits: Admits, **kwargs: Any):  # kwargs: TPESampler's
        super().__init__(**kwargs)
        self._admits = admits

    def _compute_acquisition_func(  # Optuna's (private) hook
        self, samples: dict[str, np.ndarray], mpe_below: _ParzenEstimator, mpe_above: _ParzenEstimator
    ) -> np.ndarray:
        values = super()._compute_acquisition_func(samples, mpe_below, mpe_above)
        fits = self._admits(samples)
        return np.where(fits, values, -np.inf) if fits.any() else values


class _TPESettings(TypedDict):
    """Keywords of optuna's TPESampler."""

    seed: int
    multivariate: bool
    constant_liar: bool
    prior_weight: float


def make_sampler(name: str, seed: int, admits: Admits | None = None) -> optuna.samplers.BaseSampler:
    """The named sampler; TPE weighs only candidates `admits` accepts, where given."""
    if name == "tpe":
        # A low prior weight keeps proposals near the good archs seen: on the vpu and gpu headline
        # budgets, 0.1 (vs the default 1.0) took feasible proposals from ~15% to ~50%. Optuna 5
        # deprecates the argument (removal in 6, hence `optuna<6` in pyproject).
        settings = _TPESettings(seed=seed, multivariate=True, constant_liar=True, prior_weight=0.1)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`prior_weight` has been deprecated", category=FutureWarning)
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


Params = dict[str, Any]
Key = tuple[tuple[str, Any], ...]  # an arch as sorted trial parameters
# A new arch for a trial whose base sampler found none: (the study's trials, the archs taken, rng) -> params.
Alternative = Callable[[list[optuna.trial.FrozenTrial], set[Key], np.random.Generator], Params | None]

# How a trial's arch was chosen (the objective records it as the trial's `proposed_by`).
BY_SEED, BY_SAMPLER, BY_ALTERNATIVE, BY_REPEAT, BY_RETRY = "seed", "sampler", "alternative", "repeat", "retry"


class GuidedSampler(optuna.samplers.BaseSampler):
    """Wraps a sampler: trials 0..n-1 take the seed params, later ones ask the base sampler.

    Everything is keyed by trial number, which the storage hands out once: the seeds, and
    the base sampler's random state (a fresh base seeded with `(seed, number)` per trial),
    so workers sharing a study never repeat each other's proposals, while one worker's
    run stays reproducible. After the seeds every proposal is drawn jointly (parameters the
    base proposes one by one are drawn together), and one that repeats an arch the study
    already holds (`taken`, which a base may also consult), or that `fits` rejects (over any
    device's budget), is redrawn (up to `redraws` times). A base that keeps repeating itself
    (TPE late in a long study) then yields to `alternative` (a new arch near a good one, or any
    new one that fits); only when that finds none either does a repeat go through, marked
    `repeat`: the latency constraint marks an unfit one, the objective reuses a repeat's accuracy.
    `source(number)` says which of these chose a trial's arch.
    """

    def __init__(
        self,
        make_base: Callable[[int], optuna.samplers.BaseSampler],
        seed: int,
        seeds: list[dict[str, str]],
        fits: Callable[[dict[str, str]], bool] | None = None,
        redraws: int = 50,
        alternative: Alternative | None = None,
    ):
        self.make_base, self.seed, self.seeds, self.fits, self.redraws = make_base, seed, seeds, fits, redraws
        self.alternative = alternative
        self.taken: set[Key] = set()  # the archs of the study, as of this trial's start
        self._bases: dict[int, optuna.samplers.BaseSampler] = {}
        self._sources: dict[int, str] = {}

    def source(self, number: int) -> str:
        """How trial `number`'s arch was chosen: seed, sampler, alternative, repeat, or retry (of a failed trial,
        whose arch it takes)."""
        return self._sources.get(number) or (BY_SEED if number < len(self.seeds) else BY_SAMPLER)

    def _base(self, trial: optuna.trial.FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._bases:
            self._bases[trial.number] = self.make_base(self.seed * 1_000_003 + trial.number)
        return self._bases[trial.number]

    def _seed(self, trial: optuna.trial.FrozenTrial) -> dict[str, str] | None:
        return self.seeds[trial.number] if trial.number < len(self.seeds) else None

    def infer_relative_search_space(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._seed(trial):
            return {}
        space = self._base(trial).infer_relative_search_space(study, trial)
        if space:
            return space
        return intersection_search_space(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if self._seed(trial) or not search_space:
            return {}
        base = self._base(trial)
        trials = study.get_trials(deepcopy=False)
        self.taken = {  # a failed trial's arch is free again: its retry may take it
            _key(t.params)
            for t in trials
            if t.number != trial.number
            and t.state != optuna.trial.TrialState.FAIL
            and t.params.keys() == search_space.keys()
        }

        def draw() -> dict[str, Any]:
            params = base.sample_relative(study, trial, search_space)
            for name, distribution in search_space.items():
                if name not in params:
                    params[name] = base.sample_independent(study, trial, name, distribution)
            return params

        def qualifies(params: Params) -> bool:
            return _key(params) not in self.taken and (self.fits is None or self.fits(params))

        params = draw()
        for _ in range(self.redraws):
            if qualifies(params):
                return params
            params = draw()
        if qualifies(params):
            return params
        rng = np.random.default_rng([self.seed, trial.number])
        other = self.alternative(trials, self.taken, rng) if self.alternative else None
        self._sources[trial.number] = BY_REPEAT if other is None else BY_ALTERNATIVE
        return params if other is None else other

    def sample_independent(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        seed = self._seed(trial)
        if seed:
            return seed[param_name]
        return self._base(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if _retried(trial):  # its parameters are the failed trial's, fixed: the sampler is not asked
            self._sources[trial.number] = BY_RETRY
        self._base(trial).before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: optuna.trial.TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._sources.pop(trial.number, None)
        self._bases.pop(trial.number, self._base(trial)).after_trial(study, trial, state, values)


def _retried(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether `trial` retries a failed one (Optuna's heartbeat callback made it)."""
    with warnings.catch_warnings():  # marked experimental since Optuna 2.8; the retry callback sets it
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryFailedTrialCallback.retried_trial_number(trial) is not None


def _key(params: dict[str, Any]) -> Key:
    return tuple(sorted(params.items()))


def seed_archs(space: SearchSpace, targets: Targets, n: int, seed: int, within_budgets: bool = True) -> list[Arch]:
    """`n` archs spread evenly over the range of their largest budget share, to start a study with;
    `within_budgets`: only archs every device admits.

    Uniform sampling rarely lands under a tight budget (each block has 6 of 7 choices that
    cost time), so candidates draw each block's identity probability from U(0, 1) and the
    predictors, which score about a million archs a second, keep those that fit.
    """
    picks = candidate_indices(space, np.random.default_rng(seed))
    latency = targets.predict_many(picks)
    fits = np.flatnonzero(targets.fits_many(latency)) if within_budgets else np.arange(len(picks))
    if len(fits) == 0:
        return []
    worst = targets.worst_share_many(latency[fits])  # one device: its latency, scaled
    ordered = fits[np.argsort(worst)]
    chosen = ordered[np.unique(np.linspace(0, len(ordered) - 1, n).round().astype(int))]
    return [space.from_indices(picks[i]) for i in chosen]


def candidate_indices(space: SearchSpace, rng: np.random.Generator, n: int = 20_000) -> np.ndarray:
    """Distinct archs as choice indices (at most `n`), each block skipped with a probability drawn per arch:
    `SearchSpace.sample(rng, identity=U(0, 1))` in vectorised form, so that the predictors score them at once."""
    identity = [j for j, c in enumerate(space.choices) if c.is_identity]
    others = np.array([j for j, c in enumerate(space.choices) if not c.is_identity])
    picks = others[rng.integers(len(others), size=(n, space.num_blocks))]
    if identity:
        skip = rng.random((n, space.num_blocks)) < rng.random((n, 1))
        picks = np.where(skip, identity[0], picks)
    unique: np.ndarray = np.unique(picks, axis=0)
    return unique


def guided_sampler(config: SearchConfig, space: SearchSpace, targets: Targets) -> GuidedSampler:
    """The configured sampler, started on predictor-chosen seeds; kept within every budget when constrained,
    and to archs the study does not hold yet."""
    constrained = config.mode == "constrained"
    seeds = [space.to_params(a) for a in seed_archs(space, targets, SEED_TRIALS, config.seed, constrained)]
    names = space.param_names
    tokens = [str(c) for c in space.choices]

    def fits(params: dict[str, str]) -> bool:
        return targets.fits(targets.predict(space.from_params(params)))

    def admits(samples: dict[str, np.ndarray]) -> np.ndarray:
        """Which candidates (choice indices per block parameter, in `space.choices` order) are new archs
        that fit every budget (any budget when not constrained)."""
        if not samples or not all(name in samples for name in names):
            return np.ones(len(next(iter(samples.values()), ())), dtype=bool)
        indices = np.stack([samples[name] for name in names], axis=1).astype(np.intp)
        ok = targets.fits_many(targets.predict_many(indices)) if constrained else np.ones(len(indices), dtype=bool)
        new = [_key({n: tokens[i] for n, i in zip(names, row, strict=True)}) not in guided.taken for row in indices]
        fresh: np.ndarray = ok & np.array(new, dtype=bool)
        return fresh

    def alternative(trials: list[optuna.trial.FrozenTrial], taken: set[Key], rng: np.random.Generator) -> Params | None:
        return new_arch(space, targets if constrained else None, trials, taken, rng)

    make_base = functools.partial(make_sampler, config.sampler, admits=admits)
    # Few redraws: each refits TPE on the whole study, and the alternative finds a new arch at once.
    guided = GuidedSampler(make_base, config.seed, seeds, fits if constrained else None, 10, alternative)
    return guided


def new_arch(
    space: SearchSpace,
    targets: Targets | None,
    trials: list[optuna.trial.FrozenTrial],
    taken: set[Key],
    rng: np.random.Generator,
    parents: int = 10,
    tries: int = 200,
) -> Params | None:
    """An arch not in `taken` that fits every budget of `targets` (None: any): first one or two blocks of
    one of the `parents` best complete trials changed, else any such arch of a broad random draw; None
    when neither finds one."""

    def fresh(rows: np.ndarray) -> Params | None:
        ok = targets.fits_many(targets.predict_many(rows)) if targets else np.ones(len(rows), dtype=bool)
        for row in rows[ok]:
            params = space.to_params(space.from_indices(row))
            if _key(params) not in taken:
                return params
        return None

    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values and "arch" in t.user_attrs]
    good = sorted(done, key=lambda t: t.values[0], reverse=True)[:parents]
    if good:
        base = space.to_indices([space.parse(t.user_attrs["arch"]) for t in good])
        rows = base[rng.integers(len(base), size=tries)]
        for changes in (1, 2):
            mutated = rows.copy()
            for _ in range(changes):
                blocks = rng.integers(space.num_blocks, size=tries)
                mutated[np.arange(tries), blocks] = rng.integers(len(space.choices), size=tries)
            found = fresh(mutated)
            if found:
                return found
    return fresh(candidate_indices(space, rng, 5_000))
