"""quadnas: hardware-aware NAS for QuadraNet.

`quadnas.search(...)` runs a search (like `quadnas search`); `quadnas.export(...)` exports its
result (like `quadnas export`); `quadnas.load(path)` rebuilds an exported model. Each imports its
heavy dependencies on first use.
"""

from typing import TYPE_CHECKING, Any

from quadnas._version import __version__

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.export import load
    from quadnas.study.run import search

__all__ = ["__version__", "export", "load", "search"]


def __getattr__(name: str) -> Any:
    if name == "search":
        from quadnas.study.run import search

        return search
    if name == "export":  # the package, which calls `quadnas.export.export` when called
        import quadnas.export

        return quadnas.export
    if name == "load":
        from quadnas.export import load

        return load
    raise AttributeError(f"module 'quadnas' has no attribute '{name}'")
