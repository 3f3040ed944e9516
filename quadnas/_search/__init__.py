"""The search as an Optuna study: the most accurate arch of a space under a latency budget on each of its devices.

Private: the public face of `search` and the types it takes and returns is the `quadnas` package.

`config` (SearchConfig, its devices and budgets), `names` (modes, samplers, per-device names),
`targets` (each device's predictor and budget: what fits them all), `objective` (propose, predict, score),
`samplers` (TPE weighing only feasible candidates, the guided wrapper), `storage` (SQLite, RDB
URLs, journal files), `results` (candidates, ranking, Pareto front), `finalists` (the best archs and the hand
designs trained briefly stand-alone to pick the best), `report` (files and plots),
`run` (`search()`). The names below are imported on first use, so `import quadnas._search.config`
and the command line's start-up (`names`) stay light.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas._search.config import SearchConfig
    from quadnas._search.names import DEFAULT_MODE, DEFAULT_SAMPLER, MODES, SAMPLERS, one_of
    from quadnas._search.results import Candidate, SearchResult
    from quadnas._search.run import search
    from quadnas._search.storage import open_storage

_HOMES = {
    "SearchConfig": "config",
    "DEFAULT_MODE": "names",
    "DEFAULT_SAMPLER": "names",
    "MODES": "names",
    "SAMPLERS": "names",
    "one_of": "names",
    "Candidate": "results",
    "SearchResult": "results",
    "search": "run",
    "open_storage": "storage",
}
__all__ = [  # the keys of _HOMES, sorted, for type checkers and linters
    "Candidate",
    "DEFAULT_MODE",
    "DEFAULT_SAMPLER",
    "MODES",
    "SAMPLERS",
    "SearchConfig",
    "SearchResult",
    "one_of",
    "open_storage",
    "search",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
