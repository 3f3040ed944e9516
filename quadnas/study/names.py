"""The names a search setting may take, defined once: the config's types, the samplers and the CLI read them.

Light on purpose (no pydantic, numpy or Optuna): the command line shows them before any search runs.
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["constrained", "pareto", "reward"]
SamplerName = Literal["tpe", "nsga2", "gp", "random"]
MODES: tuple[str, ...] = get_args(Mode)
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
DEFAULT_MODE: Mode = "constrained"
DEFAULT_SAMPLER: SamplerName = "tpe"
# What each mode's objective values are, as Optuna's metric names (optuna-dashboard and `optuna trials` show them).
METRIC_NAMES: dict[str, list[str]] = {
    "constrained": ["accuracy"],
    "pareto": ["accuracy", "latency_ms"],
    "reward": ["reward"],
}


def one_of(names: tuple[str, ...], default: str) -> str:
    """`a (default), b, c or d`, for a flag's help."""
    shown = [f"{n} (default)" if n == default else n for n in names]
    return f"{', '.join(shown[:-1])} or {shown[-1]}"
