"""Callables timed side by side: interleaved rounds, their spread, and same-round ratios.

Runners alternate round by round (the order rotated each round), so slow drift of a shared
machine's speed reaches every runner alike; a ratio is taken within each round, then the median.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def interleaved(runners: dict[str, Callable[[], object]], rounds: int, min_sample_s: float) -> dict[str, list[float]]:
    """Seconds per call of each runner: one sample per round, runners alternating round by round."""
    reps = {}
    for name, run in runners.items():  # warm up and size each sample to >= min_sample_s
        start = time.perf_counter()
        run()
        reps[name] = max(1, round(min_sample_s / max(time.perf_counter() - start, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(reps[name]):
                runners[name]()
            samples[name].append((time.perf_counter() - start) / reps[name])
    return samples


def paired_ratio(reference: list[float], other: list[float]) -> float:
    """Median over rounds of reference / other (same-round pairs)."""
    return statistics.median(r / o for r, o in zip(reference, other))


def spread(samples: list[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentile of `samples`."""
    p10, p50, p90 = np.percentile(samples, [10, 50, 90])
    return float(p50), float(p10), float(p90)
