"""quadnas: hardware-aware NAS for QuadraNet.

`quadnas.search(...)` runs a search (like `quadnas search`); `quadnas.export(...)` exports its
result (like `quadnas export`); `quadnas.load(path)` rebuilds an exported model. The types they take
and return are here too. Each name is imported from its home on first use, so `import quadnas` stays
light; the homes under an underscore (`_search`, `_export`) are private and may move.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes
from quadnas._version import __version__ as __version__

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas._export.formats import ExportResult
    from quadnas._export.pipeline import Exported, VerifySettings, export
    from quadnas._export.sidecar import load
    from quadnas._export.verify import LatencyCheck
    from quadnas._search.config import SearchConfig
    from quadnas._search.results import Candidate, SearchResult
    from quadnas._search.run import search
    from quadnas.progress import Progress
    from quadnas.record import SearchRecord

_HOMES = {
    "ExportResult": "_export.formats",
    "Exported": "_export.pipeline",
    "VerifySettings": "_export.pipeline",
    "export": "_export.pipeline",
    "load": "_export.sidecar",
    "LatencyCheck": "_export.verify",
    "SearchConfig": "_search.config",
    "Candidate": "_search.results",
    "SearchResult": "_search.results",
    "search": "_search.run",
    "Progress": "progress",
    "SearchRecord": "record",
}
__all__ = [  # the keys of _HOMES, sorted, for type checkers and linters
    "Candidate",
    "ExportResult",
    "Exported",
    "LatencyCheck",
    "Progress",
    "SearchConfig",
    "SearchRecord",
    "SearchResult",
    "VerifySettings",
    "export",
    "load",
    "search",
]

__getattr__ = lazy_attributes(__name__, _HOMES)
