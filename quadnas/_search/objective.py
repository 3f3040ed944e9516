"""The Optuna objective: propose an arch, predict its latency on every device, score it with the supernet if it fits.

Modes: `constrained` (max accuracy s.t. predicted latency <= budget on every device, one
`trial.set_constraint` per device; proposals over a budget are never evaluated), `pareto`
(accuracy vs every device's latency), `reward` (MnasNet: acc * prod over devices of (lat / T) ** w).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from datetime import datetime

import optuna

from quadnas._search.samplers import BY_REPEAT, GuidedSampler
from quadnas._search.targets import Targets
from quadnas.space import Arch, SearchSpace


class Objective:
    """Proposes an arch per trial, predicts its latency on every device, evaluates accuracy if it can fit."""

    def __init__(
        self,
        space: SearchSpace,
        targets: Targets,
        accuracy: Callable[[Arch], float],
        mode: str,
        reward_exponent: float,
        total: int,
        refresh: Callable[[], None] = lambda: None,
    ):
        """`refresh`: makes the study's next read of its trials ask the storage (see `shared_reads.SharedReads`)."""
        self.space, self.targets, self.accuracy = space, targets, accuracy
        self.mode, self.reward_exponent = mode, reward_exponent
        self.total, self.refresh = total, refresh
        self.began = datetime.now()  # running trials of workers alive since then hold their place
        self.tokens = [str(c) for c in space.choices]

    def propose(self, trial: optuna.Trial) -> Arch:
        return self.space.from_params(
            {name: trial.suggest_categorical(name, self.tokens) for name in self.space.param_names}
        )

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        self._stop_if_done(trial)
        value = self._value(trial)
        self.refresh()  # one read of the study after the evaluation, for both checks below and the callbacks
        self._stop_if_done(trial)  # another worker may have completed the last trial meanwhile
        self._prune_if_twin(trial)  # or proposed the same arch at the same moment
        return value

    def _stop_if_done(self, trial: optuna.Trial) -> None:
        """Close `trial` unevaluated once the study holds `total` trials ahead of it: --trials is exact.

        Ahead: complete trials, and running ones of a lower number started since this worker
        began (a live worker's; one a killed worker left running is not waited for).
        """
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        ahead = [
            t
            for t in trial.study.get_trials(deepcopy=False, states=states)
            if t.state == optuna.trial.TrialState.COMPLETE
            or (t.number < trial.number and t.datetime_start is not None and t.datetime_start >= self.began)
        ]
        if len(ahead) >= self.total:
            trial.study.stop()
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned(f"the study already holds {self.total} complete or running trials")

    def _prune_if_twin(self, trial: optuna.Trial) -> None:
        """Close `trial` as pruned when another live trial holds its arch though the sampler proposed it as
        new: two workers drew one arch at once. Checked before the evaluation and again after it (the other
        trial may have written its arch meanwhile). The lower number keeps the arch, unless the higher one
        has already completed (it checked before this trial's arch reached the storage, so it did not
        yield): the study's complete trials stay distinct archs. A known repeat (no new arch found) goes on."""
        if trial.user_attrs.get("proposed_by") == BY_REPEAT:
            return
        live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
        for other in trial.study.get_trials(deepcopy=False, states=live):
            if other.number == trial.number or other.params != trial.params:
                continue
            if other.number < trial.number or other.state == optuna.trial.TrialState.COMPLETE:
                trial.set_user_attr("duplicate_of", other.number)
                raise optuna.TrialPruned(f"trial {other.number} holds the same arch")

    def _value(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        arch = self.propose(trial)
        sampler = trial.study.sampler
        if isinstance(sampler, GuidedSampler):
            trial.set_user_attr("proposed_by", sampler.source(trial.number))
        self._prune_if_twin(trial)
        latencies = self.targets.predict(arch)
        feasible = self.targets.fits(latencies)
        trial.set_user_attr("arch", str(arch))
        for t in self.targets:
            trial.set_user_attr(self.targets.key("latency_ms", t), latencies[t.label])
            trial.set_user_attr(self.targets.key("budget_share", t), round(t.budget.share(latencies[t.label]), 4))
        trial.set_user_attr("feasible", feasible)
        if self.mode == "constrained":
            with warnings.catch_warnings():  # a retried trial inherits its constraints; ours are the same arch's
                warnings.filterwarnings("ignore", message="The constraint value is ignored", category=UserWarning)
                for t in self.targets:
                    trial.set_constraint(self.targets.key("latency", t), t.budget.share(latencies[t.label]) - 1)
            if not feasible:
                trial.set_user_attr("evaluated", False)
                return 0.0  # not evaluated: the predictor already rejects it
        acc = self._accuracy(trial, arch)
        if self.mode == "pareto":
            return acc, *latencies.values()
        if self.mode == "reward":
            shares: list[float] = [t.budget.share(latencies[t.label]) ** self.reward_exponent for t in self.targets]
            return acc * math.prod(shares)
        return acc

    def _accuracy(self, trial: optuna.Trial, arch: Arch) -> float:
        """Accuracy, reused from an earlier trial of the study when any worker evaluated this arch."""
        acc: float
        for done in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if done.user_attrs.get("arch") == str(arch) and "accuracy" in done.user_attrs:
                trial.set_user_attr("reused_from", done.number)
                acc = done.user_attrs["accuracy"]
                break
        else:
            acc = float(self.accuracy(arch))
        trial.set_user_attr("accuracy", acc)
        trial.set_user_attr("evaluated", True)
        return acc
