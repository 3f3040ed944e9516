"""Estimating latency where it cannot be measured: the tables of the shipped estimated devices.

`model` (the operator cost model), `reference_models` (published networks as primitive ops),
`points` (the published latencies they are fitted to), `recipes` (each device's prior, fitted
parameters and header), `build` (`rebuild`: fit, round, write one row per op spec, compare with
the files on disk), `differences` (what counts as a changed table). The names below are imported
on first use.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.latency.estimate.build import Rebuilt, rebuild
    from quadnas.latency.estimate.recipes import RECIPES, Recipe

_HOMES = {"Rebuilt": "build", "rebuild": "build", "RECIPES": "recipes", "Recipe": "recipes"}
__all__ = ["RECIPES", "Rebuilt", "Recipe", "rebuild"]  # the keys of _HOMES, sorted

__getattr__ = lazy_attributes(__name__, _HOMES)
