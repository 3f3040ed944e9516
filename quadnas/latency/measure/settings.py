"""`ProfileSettings`: how much `quadnas profile` measures, and its defaults.

Light on purpose (the timing code is imported on use): the command line shows these defaults
in its help without importing torch or numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quadnas.portable.timing import Schedule


@dataclass(frozen=True)
class ProfileSettings:
    """How much to measure. The defaults profile quadranet-t at 224 in about 2-3 minutes on 2 cores."""

    rounds: int = 15
    round_ms: float = 30.0
    # Every op spec of quadranet-t (29) and the calibration networks open at once, their rounds interleaved
    # over the whole run: a slow spell of a shared machine then scales every row and network alike, which the
    # calibration absorbs, instead of the rows of one small window (docs/tables.md, "Several threads").
    window: int = 64
    warmup_ms: float = 50.0
    networks: int = 8
    network_rounds: int = 7  # per network that `validate` and `--adapt` time; calibration networks get `rounds`
    seed: int = 0

    def op_schedule(self) -> Schedule:
        """How each op is timed (`quadnas.portable.timing.op_schedule`, as a kit times it)."""
        from quadnas.portable.timing import op_schedule

        return op_schedule(asdict(self))

    def network_schedule(self, count: int) -> Schedule:
        """How `count` whole networks are timed (`quadnas.portable.timing.network_schedule`)."""
        from quadnas.portable.timing import network_schedule

        return network_schedule(asdict(self), count)

    def describe(self) -> str:
        return (
            f"{self.rounds} interleaved rounds of >= {self.round_ms:g} ms per op "
            f"(window {self.window}, shuffled, {self.warmup_ms:g} ms warm-up)"
        )
