"""The portable measuring core: what a profiling kit runs on a device without quadnas, and what quadnas
profiles with, so that both measure alike.

Standard library and numpy only; a runtime (onnxruntime, OpenVINO, LiteRT) is imported when a session
asks for it. The modules import each other relatively, so the package also runs under another name inside
the zipapp a kit ships as `run.py` (`bundle.write_runner`), and they keep to Python 3.9 syntax (type
unions only in annotations), since a device may have an older Python than quadnas needs. One job a module:

- `host`: this machine's identity and its fingerprint;
- `sessions`: a timed session for each runtime and every setting it runs with (the process's one
  OpenVINO Core: `openvino_core`);
- `clocks`, `timing`: the clocks and the interleaved timing loop;
- `results`: a kit's results file; `files`: the atomic writer, of every file quadnas writes too;
- `arguments`: argparse value types; `run`: a kit's command line; `bundle`: the zipapp;
- `errors`: `KitError`, a problem the user can fix.

This face offers the light names (standard library only) that quadnas's command line uses at start-up.
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
