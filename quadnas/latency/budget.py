"""A latency budget: parsed once from text with a unit (`30ms`, `0.03s`, `500us`), then one value."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from quadnas.errors import QuadnasError

_UNITS_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3}  # micro sign and Greek mu
_BUDGET = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(ms|s|us|µs|μs)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """The most milliseconds an arch may take; `30ms` and `0.03s` are the same budget."""

    ms: float

    @classmethod
    def parse(cls, text: str | float | Budget) -> Budget:
        """A budget from text with its unit; a number without one is an error (ms or s?)."""
        if isinstance(text, Budget):
            return text
        match = _BUDGET.match(str(text))
        if not match:
            hint = "has no unit" if re.fullmatch(r"\s*-?[0-9.e+-]+\s*", str(text)) else "is not a latency"
            raise QuadnasError(
                f"budget '{text}' {hint}: write a positive number with a unit, e.g. 30ms, 0.03s or 500us"
            )
        ms = float(f"{float(match.group(1)) * _UNITS_MS[match.group(2).lower()]:.12g}")  # 0.03s is 30ms exactly
        if ms <= 0:
            raise QuadnasError(f"budget '{text}' must be positive: write e.g. 30ms")
        return cls(ms)

    def admits(self, latency_ms: float) -> bool:
        """Whether an arch of `latency_ms` fits."""
        return latency_ms <= self.ms

    def admits_many(self, latency_ms: np.ndarray) -> np.ndarray:
        """`admits` for an array of latencies at once."""
        return np.asarray(latency_ms) <= self.ms

    def share(self, latency_ms: float) -> float:
        """`latency_ms` as a fraction of the budget."""
        return latency_ms / self.ms

    def widened(self, pct: float) -> Budget:
        """The budget plus `pct` percent (e.g. a table's calibration error)."""
        return Budget(self.ms * (1 + pct / 100))

    def __str__(self) -> str:
        """The canonical text, in milliseconds: `30ms` for `0.03s`."""
        return f"{self.ms:g}ms"
