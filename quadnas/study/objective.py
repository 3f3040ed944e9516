"""The Optuna objective: propose an arch, predict its latency, score it with the supernet if it fits.

Modes: `constrained` (max accuracy s.t. predicted latency <= budget, via Optuna's
`trial.set_constraint`; proposals over budget are never evaluated), `pareto`
(accuracy vs latency), `reward` (MnasNet: acc * (lat / T) ** w).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import optuna

from quadnas.latency.budget import Budget
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import Arch, SearchSpace


class Objective:
    """Proposes an arch per trial, predicts its latency, evaluates accuracy if it can fit."""

    def __init__(
        self,
        space: SearchSpace,
        predictor: LatencyPredictor,
        accuracy: Callable[[Arch], float],
        budget: Budget,
        mode: str,
        reward_exponent: float,
        total: int,
    ):
        self.space, self.predictor, self.accuracy = space, predictor, accuracy
        self.budget, self.mode, self.reward_exponent = budget, mode, reward_exponent
        self.total = total
        self.began = datetime.now()  # running trials of workers alive since then hold their place
        self.tokens = [str(c) for c in space.choices]

    def propose(self, trial: optuna.Trial) -> Arch:
        return self.space.from_params(
            {name: trial.suggest_categorical(name, self.tokens) for name in self.space.param_names}
        )

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        self._stop_if_done(trial)
        value = self._value(trial)
        self._stop_if_done(trial)  # another worker may have completed the last trial meanwhile
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

    def _value(self, trial: optuna.Trial) -> float | tuple[float, float]:
        arch = self.propose(trial)
        latency = float(self.predictor.predict(arch))
        trial.set_user_attr("arch", str(arch))
        trial.set_user_attr("latency_ms", latency)
        trial.set_user_attr("budget_share", round(self.budget.share(latency), 4))
        trial.set_user_attr("feasible", self.budget.admits(latency))
        if self.mode == "constrained":
            trial.set_constraint("latency", self.budget.share(latency) - 1)
            if not self.budget.admits(latency):
                trial.set_user_attr("evaluated", False)
                return 0.0  # not evaluated: the predictor already rejects it
        acc = self._accuracy(trial, arch)
        if self.mode == "pareto":
            return acc, latency
        if self.mode == "reward":
            reward: float = acc * self.budget.share(latency) ** self.reward_exponent  # float ** float is typed Any
            return reward
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
