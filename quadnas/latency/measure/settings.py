"""`ProfileSettings`: how much `quadnas profile` measures, and its defaults.

Light on purpose (the timing code is imported on use): the command line shows these defaults
in its help without importing torch or numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quadnas.latency.measure.kit_runner import Schedule


@dataclass(frozen=True)
class ProfileSettings:
    """How much to measure. The defaults profile quadranet-t at 224 in about 2-3 minutes on 2 cores."""

    rounds: int = 15
    round_ms: float = 30.0
    window: int = 6
    warmup_ms: float = 50.0
    networks: int = 8
    network_rounds: int = 7
    seed: int = 0

    def op_schedule(self) -> Schedule:
        from quadnas.latency.measure.kit_runner import Schedule

        return Schedule(
            rounds=self.rounds, round_s=self.round_ms / 1e3, window=self.window, warmup_s=self.warmup_ms / 1e3
        )

    def network_schedule(self, count: int) -> Schedule:
        """Whole networks are timed like ops, with fewer rounds (they are long and stable), and
        up to NETWORK_WINDOW of them interleaved, so that they share the machine's conditions."""
        from quadnas.latency.measure.kit_runner import NETWORK_WINDOW, Schedule

        return Schedule(
            rounds=self.network_rounds,
            round_s=self.round_ms / 1e3,
            window=max(self.window, min(count, NETWORK_WINDOW)),
            warmup_s=self.warmup_ms / 1e3,
        )

    def describe(self) -> str:
        return (
            f"{self.rounds} interleaved rounds of >= {self.round_ms:g} ms per op "
            f"(window {self.window}, shuffled, {self.warmup_ms:g} ms warm-up)"
        )
