"""Latency budgets with units: `30ms`, `0.03s`, `500us`."""

from __future__ import annotations

import re

from quadnas.errors import QuadnasError

_UNITS_MS = {"ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3}  # micro sign and Greek mu
_BUDGET = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(ms|s|us|µs|μs)\s*$", re.IGNORECASE)


def parse_budget(text: str | float) -> float:
    """A budget with its unit, in milliseconds."""
    match = _BUDGET.match(str(text))
    if not match:
        hint = "has no unit" if re.fullmatch(r"\s*-?[0-9.e+-]+\s*", str(text)) else "is not a latency"
        raise QuadnasError(f"budget '{text}' {hint}: write a positive number with a unit, e.g. 30ms, 0.03s or 500us")
    value = float(match.group(1)) * _UNITS_MS[match.group(2).lower()]
    if value <= 0:
        raise QuadnasError(f"budget '{text}' must be positive: write e.g. 30ms")
    return value
