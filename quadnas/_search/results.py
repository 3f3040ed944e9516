"""What a search found: candidates read from the study, the feasible ranking, the Pareto front.

A candidate's latencies and the budgets are keyed by device label, in the search's device order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from quadnas._search.names import per_device
from quadnas.latency.budget import Budget
from quadnas.space import Arch

if TYPE_CHECKING:
    from quadnas._search.config import SearchConfig


@dataclass
class Candidate:
    """One evaluated architecture and its predicted latency on each device (by label)."""

    arch: Arch
    accuracy: float | None  # with the weights it inherits from the supernet
    latencies: dict[str, float]
    trial: int | None  # None: a hand design the study never proposed
    proxy: float | None = None  # the `--rerank` proxy's score; None without re-ranking
    trained_seeds: tuple[float, ...] = ()  # a finalist's accuracy after short stand-alone training, by seed
    origin: str = "search"  # "search", or "hand-designed" for a finalist the search did not propose

    @property
    def trained(self) -> float | None:
        """A finalist's short-training accuracy: the mean over its seeds (None for an arch that was no finalist)."""
        return sum(self.trained_seeds) / len(self.trained_seeds) if self.trained_seeds else None

    @property
    def latency_ms(self) -> float:
        """The latency of a single-device search's candidate (`latencies` holds every device's)."""
        if len(self.latencies) != 1:
            raise ValueError(f"trial {self.trial} has {len(self.latencies)} devices' latencies: read .latencies")
        return next(iter(self.latencies.values()))

    def feasible(self, budgets: Mapping[str, Budget]) -> bool:
        """Whether every device's budget admits it."""
        return all(budget.admits(self.latencies[label]) for label, budget in budgets.items())

    def shares(self, budgets: Mapping[str, Budget]) -> dict[str, float]:
        """Its latency as a fraction of each device's budget."""
        return {label: budget.share(self.latencies[label]) for label, budget in budgets.items()}

    def worst_share(self, budgets: Mapping[str, Budget]) -> float:
        """Its largest share of a budget: above 1 it misses at least one."""
        return max(self.shares(budgets).values())

    def evaluated_accuracy(self) -> float:
        """`accuracy` of a candidate known to be evaluated (ranked, on the Pareto front, the best)."""
        assert self.accuracy is not None, f"trial {self.trial} was not evaluated"
        return self.accuracy

    def row(self) -> dict[str, Any]:
        """Its CSV columns: arch, accuracy, one `latency_ms[label]` per device, trial."""
        latencies = {per_device("latency_ms", label): ms for label, ms in self.latencies.items()}
        return {"arch": str(self.arch), "accuracy": self.accuracy, **latencies, "trial": self.trial}


@dataclass
class SearchResult:
    config: SearchConfig
    study: optuna.Study
    budgets: dict[str, Budget]  # by device label, in the search's device order
    run_dir: Path
    best: Candidate | None
    ranked: list[Candidate]  # feasible, most accurate first
    closest: list[Candidate]  # when nothing is feasible: the proposals closest to every budget
    pareto: list[Candidate]
    candidates: list[Candidate]  # every complete trial's
    supernet_width: float = 1.0  # < 1: a proxy supernet scored the archs
    finalists: list[Candidate] = field(default_factory=list)  # judged by short training, the best first
    finalist_epochs: float | None = None  # each finalist's stand-alone training; None without finalists
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def budget(self) -> Budget:
        """The budget of a single-device search (`budgets` holds every device's)."""
        if len(self.budgets) != 1:
            raise ValueError(f"this search runs under {len(self.budgets)} devices: read SearchResult.budgets")
        return next(iter(self.budgets.values()))


def latencies_of(trial: optuna.trial.FrozenTrial, labels: Sequence[str]) -> dict[str, float] | None:
    """The trial's predicted latency on each device, by label; None where it has none (not proposed yet).

    Studies of earlier versions named a single device's attribute `latency_ms`, without its label.
    """
    attrs = trial.user_attrs
    keys = {label: per_device("latency_ms", label) for label in labels}
    if len(labels) == 1 and keys[labels[0]] not in attrs:
        keys = {labels[0]: "latency_ms"}
    if not all(key in attrs for key in keys.values()):
        return None
    return {label: float(attrs[key]) for label, key in keys.items()}


def candidates(study: optuna.Study, labels: Sequence[str]) -> list[Candidate]:
    """Every completed trial that has an arch (`labels`: the devices' labels, in order)."""
    found = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        latencies = latencies_of(t, labels)
        if "arch" in t.user_attrs and latencies is not None:
            arch = Arch.from_text(t.user_attrs["arch"])
            found.append(Candidate(arch, t.user_attrs.get("accuracy"), latencies, t.number))
    return found


def pareto_front(items: list[Candidate]) -> list[Candidate]:
    """Evaluated candidates no other one beats on accuracy and every device's latency at once, fastest first.

    In that order no candidate is beaten by a later one, so each needs checking only against the
    front so far; of equal ones (a repeated arch) the first stays.
    """
    front: list[Candidate] = []
    evaluated = (c for c in items if c.accuracy is not None)
    for c in sorted(evaluated, key=lambda c: (*c.latencies.values(), -c.evaluated_accuracy())):
        if not any(_at_least_as_good(f, c) for f in front):
            front.append(c)
    return front


def _at_least_as_good(a: Candidate, b: Candidate) -> bool:
    """`a` is as accurate as `b` or more, and as fast or faster on every device."""
    faster = all(a.latencies[label] <= ms for label, ms in b.latencies.items())
    return faster and a.evaluated_accuracy() >= b.evaluated_accuracy()


def rank_feasible(items: list[Candidate], budgets: Mapping[str, Budget]) -> list[Candidate]:
    """Distinct evaluated archs within every budget, most accurate (then furthest under the tightest budget) first."""
    seen: dict[Arch, Candidate] = {}
    for c in items:
        if c.accuracy is not None and c.feasible(budgets):
            seen.setdefault(c.arch, c)
    return sorted(seen.values(), key=lambda c: (-c.evaluated_accuracy(), c.worst_share(budgets)))


def closest(items: list[Candidate], budgets: Mapping[str, Budget], n: int = 5) -> list[Candidate]:
    """When nothing fits: the `n` proposals of the smallest largest budget share (one device: the fastest)."""
    return sorted(items, key=lambda c: c.worst_share(budgets))[:n]
