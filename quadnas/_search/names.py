"""The names a search setting may take, defined once: the config's types, the samplers and the CLI read them.

Light on purpose (no pydantic, numpy or Optuna): the command line shows them before any search runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

Mode = Literal["constrained", "pareto", "reward"]
SamplerName = Literal["tpe", "nsga2", "gp", "random"]
MODES: tuple[str, ...] = get_args(Mode)
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
DEFAULT_MODE: Mode = "constrained"
DEFAULT_SAMPLER: SamplerName = "tpe"


def metric_names(mode: str, labels: Sequence[str]) -> list[str]:
    """What the mode's objective values are, as Optuna's metric names (optuna-dashboard and `optuna trials` show
    them): pareto mode minimises every device's latency (`labels`: the devices' labels)."""
    if mode == "pareto":
        return ["accuracy", *(per_device("latency_ms", label) for label in labels)]
    return ["reward"] if mode == "reward" else ["accuracy"]


def one_of(names: tuple[str, ...], default: str) -> str:
    """`a (default), b, c or d`, for a flag's help."""
    shown = [f"{n} (default)" if n == default else n for n in names]
    return f"{', '.join(shown[:-1])} or {shown[-1]}"


def per_device(name: str, label: str) -> str:
    """A per-device trial attribute, constraint or column, one form for one device or many: `latency_ms[cpu]`."""
    return f"{name}[{label}]"
