"""The devices a search runs under: each one's latency predictor and budget, and what fits them all.

An arch is feasible only when every device's budget admits its predicted latency there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from quadnas._search.config import DeviceBudget
from quadnas._search.names import per_device
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.devices import load_device_table
from quadnas.latency.precision import file_precision
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import Arch, SearchSpace


@dataclass(frozen=True)
class Target:
    """One device of a search: its name as given, its short label, its budget and its predictor."""

    device: str
    label: str
    budget: Budget
    predictor: LatencyPredictor


class Targets:
    """Every device of a search, in the order given."""

    def __init__(self, items: Sequence[Target]):
        self.items = tuple(items)

    @classmethod
    def load(cls, devices: Sequence[DeviceBudget], space: SearchSpace) -> Targets:
        """Each device's table and predictor; two names of one table (`vpu`, `myriad-x`) are an error."""
        items: list[Target] = []
        seen: dict[object, str] = {}  # a table's file (or name) -> the device that named it
        for entry in devices:
            table = load_device_table(entry.device)
            key = table.path.resolve() if table.path is not None else table.name
            if key in seen:
                raise QuadnasError(
                    f"devices '{seen[key]}' and '{entry.device}' name one latency table ({table.name}): give it once"
                )
            seen[key] = entry.device
            first = items[0].predictor.table if items else table
            if file_precision(table.meta.precision) != file_precision(first.meta.precision):
                raise QuadnasError(
                    f"tables {first.name} ({first.meta.precision}) and {table.name} ({table.meta.precision}) predict "
                    "networks of different precisions, and one search exports one: give devices whose tables are "
                    "all int8 or all float"
                )
            items.append(Target(entry.device, entry.label, entry.budget, LatencyPredictor(table, space)))
        return cls(items)

    def __iter__(self) -> Iterator[Target]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def several(self) -> bool:
        return len(self.items) > 1

    @property
    def precision(self) -> str:
        """The precision of the files the tables predict (int8 or fp32), which an export of the result takes."""
        return file_precision(self.items[0].predictor.table.meta.precision)

    @property
    def budgets(self) -> dict[str, Budget]:
        """Each device's budget, by label."""
        return {t.label: t.budget for t in self.items}

    def key(self, name: str, target: Target) -> str:
        """The trial attribute, constraint or column `name` of `target` (`latency_ms[cpu]`)."""
        return per_device(name, target.label)

    def predict(self, arch: Arch) -> dict[str, float]:
        """The arch's predicted latency (ms) on each device, by label."""
        return {t.label: t.predictor.predict(arch) for t in self.items}

    def predict_many(self, indices: np.ndarray) -> np.ndarray:
        """Predicted latencies (n, devices) of archs given as choice indices (n, blocks)."""
        return np.stack([t.predictor.predict_many(indices) for t in self.items], axis=1)

    def fits(self, latencies: Mapping[str, float]) -> bool:
        """Whether every device's budget admits its latency."""
        return all(t.budget.admits(latencies[t.label]) for t in self.items)

    def fits_many(self, latencies: np.ndarray) -> np.ndarray:
        """`fits` for the rows of a `predict_many` result."""
        fits: np.ndarray = np.all([t.budget.admits_many(latencies[:, i]) for i, t in enumerate(self.items)], axis=0)
        return fits

    def worst_share_many(self, latencies: np.ndarray) -> np.ndarray:
        """Each row's largest share of a budget (1.0: exactly at the tightest budget)."""
        budgets_ms = np.array([t.budget.ms for t in self.items])
        worst: np.ndarray = (latencies / budgets_ms).max(axis=1)
        return worst
