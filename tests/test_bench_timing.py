"""quadnas.bench.timing: interleaved rounds, their spread, same-round ratios."""

import pytest

from quadnas.bench import timing
from quadnas.bench.timing import interleaved, paired_ratio, spread


def test_interleaved_rotates_the_order_and_takes_one_sample_per_round(monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: float(next(clock)))
    calls: list[str] = []
    runners = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    samples = interleaved(runners, rounds=3, min_sample_s=0.0)
    assert calls[:3] == ["a", "b", "c"]  # one warm-up call each
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {name: len(s) for name, s in samples.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(v == 1.0 for s in samples.values() for v in s)  # one tick per call on the fake clock


def test_interleaved_sizes_samples_to_the_minimum_time(monkeypatch):
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    calls = []
    samples = interleaved({"a": lambda: calls.append(1)}, rounds=2, min_sample_s=4.0)
    assert len(calls) == 1 + 2 * 4 and samples["a"] == [0.25, 0.25]  # 4 calls a sample, 1 s between ticks


def test_paired_ratio_and_spread():
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 1.0, 3.0]) == 3.0  # median of 2, 4, 3
    median, p10, p90 = spread([float(x) for x in range(11)])
    assert (median, p10, p90) == pytest.approx((5.0, 1.0, 9.0))
