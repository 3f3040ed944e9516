"""The search as an Optuna study: the most accurate arch of a space under a latency budget.

(Named `study`, not `search`, so that the face function `quadnas.search` keeps its name.)

`config` (SearchConfig), `objective` (propose, predict, score), `samplers` (TPE weighing only
feasible candidates, the guided wrapper), `storage` (SQLite, RDB URLs, journal files),
`results` (candidates, ranking, Pareto front), `report` (files and plots), `run` (`search()`).
The face is imported on first use, so `import quadnas.study.config` stays light.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.study.config import SearchConfig
    from quadnas.study.results import Candidate, SearchResult
    from quadnas.study.run import search

__all__ = ["Candidate", "SearchConfig", "SearchResult", "search"]


def __getattr__(name: str) -> Any:
    if name == "search":
        from quadnas.study.run import search

        return search
    if name == "SearchConfig":
        from quadnas.study.config import SearchConfig

        return SearchConfig
    if name in ("Candidate", "SearchResult"):
        from quadnas.study import results

        return getattr(results, name)
    raise AttributeError(f"module 'quadnas.study' has no attribute '{name}'")
