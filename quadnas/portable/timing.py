"""The timing loop: models warmed up, then timed in rounds interleaved in shuffled order.

Profiling here and a kit on a device time models with this one loop, so both measure alike.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

NETWORK_WINDOW = 12  # whole networks timed interleaved at a time (~100 MB each at 224 px)


class TimedSession(Protocol):
    """A prepared model that can be called repeatedly and timed."""

    def time(self, n: int) -> list[float]:
        """Call the model `n` times back to back; the seconds each call took."""
        ...


@dataclass(frozen=True)
class Timing:
    """Summary of per-call times: median and spread in milliseconds, number of calls."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = np.asarray(seconds) * 1e3
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), len(ms))


@dataclass(frozen=True)
class Schedule:
    """How long and how often each model is timed.

    Every model is warmed up, then timed in `rounds` rounds; a round calls it back to
    back for at least `round_s` seconds (at least once). Up to `window` models are
    measured at a time, their rounds interleaved in shuffled order, so slow drift of a
    busy machine spreads over all of them instead of biasing one.
    """

    rounds: int = 20
    round_s: float = 0.04
    window: int = 6
    warmup_s: float = 0.05

    def calls_per_round(self, seconds_per_call: float) -> int:
        return max(1, math.ceil(self.round_s / max(seconds_per_call, 1e-7)))


def op_schedule(settings: Mapping[str, float]) -> Schedule:
    """How ops (and the empty model of the per-call overhead) are timed, from `ProfileSettings`' fields
    (a kit's manifest holds them as `settings`)."""
    return Schedule(
        rounds=int(settings["rounds"]),
        round_s=settings["round_ms"] / 1e3,
        window=int(settings["window"]),
        warmup_s=settings["warmup_ms"] / 1e3,
    )


def network_schedule(settings: Mapping[str, float], count: int) -> Schedule:
    """How `count` whole networks are timed: like ops, with fewer rounds (they are long and stable), and up to
    NETWORK_WINDOW of them interleaved, so that they share the machine's conditions (ops' window does not apply:
    a network holds far more memory than an op)."""
    return Schedule(
        rounds=int(settings["network_rounds"]),
        round_s=settings["round_ms"] / 1e3,
        window=max(1, min(count, NETWORK_WINDOW)),
        warmup_s=settings["warmup_ms"] / 1e3,
    )


def warm_up(session: TimedSession, schedule: Schedule) -> float:
    """Run the model for `warmup_s` (at least twice); its typical seconds per call."""
    times = session.time(2)
    while sum(times) < schedule.warmup_s:
        times += session.time(max(1, min(len(times), 1000)))
    return float(np.median(times[1:]))


def measure_interleaved(
    keys: list[str],
    open_session: Callable[[str], TimedSession],
    schedule: Schedule,
    on_done: Callable[[str, Timing], None],
    seed: int = 0,
    on_round: Callable[[str], None] | None = None,
) -> None:
    """Time every key's model; `on_done(key, timing)` as soon as each one is complete, `on_round(key)` after
    each of its rounds (progress, where every model is open at once and all complete together at the end).

    A sliding window of `schedule.window` open models: each pass runs one round of
    every open model in shuffled order; a model that has its rounds is reported and
    closed, and the next key takes its place.
    """
    rng = random.Random(seed)
    pending = list(keys)
    rng.shuffle(pending)
    active: dict[str, tuple[TimedSession, int]] = {}
    samples: dict[str, list[list[float]]] = {}
    while pending or active:
        while pending and len(active) < schedule.window:
            key = pending.pop()
            session = open_session(key)
            active[key] = (session, schedule.calls_per_round(warm_up(session, schedule)))
            samples[key] = []
        order = list(active)
        rng.shuffle(order)
        for key in order:
            session, calls = active[key]
            samples[key].append(session.time(calls))
            if on_round is not None:
                on_round(key)
            if len(samples[key]) == schedule.rounds:
                del active[key]
                on_done(key, Timing.of([t for round_ in samples.pop(key) for t in round_]))
