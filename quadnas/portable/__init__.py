"""The portable measuring core: what a profiling kit runs on a device without quadnas, and what quadnas
profiles with, so that both measure alike (docs/architecture.md lists its modules).

Standard library and numpy only; a runtime (onnxruntime, OpenVINO, LiteRT) is imported when a session
asks for it. The modules import each other relatively, so the package also runs under another name inside
the zipapp a kit ships as `run.py` (`bundle.write_runner`), and keep to Python 3.9 syntax, since a device
may have an older Python than quadnas needs. This face offers the light names (standard library only)
that quadnas's command line uses at start-up.
"""

from .arguments import non_negative_int, positive_float, positive_int
from .clocks import CLOCK_CHOICES
from .errors import KitError
from .files import atomic_save, atomic_write

__all__ = [
    "CLOCK_CHOICES",
    "KitError",
    "atomic_save",
    "atomic_write",
    "non_negative_int",
    "positive_float",
    "positive_int",
]
