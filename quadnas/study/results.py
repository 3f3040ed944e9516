"""What a search found: candidates read from the study, the feasible ranking, the Pareto front."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from quadnas.latency.budget import Budget

if TYPE_CHECKING:
    from quadnas.study.config import SearchConfig


@dataclass
class Candidate:
    """One evaluated architecture."""

    arch: str
    accuracy: float | None
    latency_ms: float
    trial: int

    def feasible(self, budget: Budget) -> bool:
        return budget.admits(self.latency_ms)

    def evaluated_accuracy(self) -> float:
        """`accuracy` of a candidate known to be evaluated (ranked, on the Pareto front, the best)."""
        assert self.accuracy is not None, f"trial {self.trial} was not evaluated"
        return self.accuracy


@dataclass
class SearchResult:
    config: SearchConfig
    study: optuna.Study
    budget: Budget
    run_dir: Path
    best: Candidate | None
    ranked: list[Candidate]  # feasible, most accurate first
    closest: list[Candidate]  # when nothing is feasible: the fastest proposals
    pareto: list[Candidate]
    candidates: list[Candidate]  # every complete trial's
    supernet_width: float = 1.0  # < 1: a proxy supernet scored the archs
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def candidates(study: optuna.Study) -> list[Candidate]:
    """Every completed trial that has an arch."""
    return [
        Candidate(t.user_attrs["arch"], t.user_attrs.get("accuracy"), t.user_attrs["latency_ms"], t.number)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if "arch" in t.user_attrs
    ]


def pareto_front(items: list[Candidate]) -> list[Candidate]:
    """Evaluated candidates no other one beats on both accuracy and latency, fastest first."""
    front: list[Candidate] = []
    for c in sorted(
        (c for c in items if c.accuracy is not None), key=lambda c: (c.latency_ms, -c.evaluated_accuracy())
    ):
        if not front or c.evaluated_accuracy() > front[-1].evaluated_accuracy():
            front.append(c)
    return front


def rank_feasible(items: list[Candidate], budget: Budget) -> list[Candidate]:
    """Distinct evaluated archs under the budget, most accurate (then fastest) first."""
    seen: dict[str, Candidate] = {}
    for c in items:
        if c.accuracy is not None and c.feasible(budget):
            seen.setdefault(c.arch, c)
    return sorted(seen.values(), key=lambda c: (-c.evaluated_accuracy(), c.latency_ms))
