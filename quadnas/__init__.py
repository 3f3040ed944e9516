"""quadnas: hardware-aware NAS for QuadraNet.

`quadnas.search(...)` runs a search (like `quadnas search`); `quadnas.load(path)`
rebuilds an exported model. Both import their heavy dependencies on first use.
"""

from quadnas._version import __version__

__all__ = ["__version__", "load", "search"]


def __getattr__(name: str):
    if name == "search":
        from quadnas.study.run import search

        return search
    if name == "load":
        from quadnas.export import load

        return load
    raise AttributeError(f"module 'quadnas' has no attribute '{name}'")
