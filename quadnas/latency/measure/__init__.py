"""Measuring latency on real hardware: runtimes (`backends`), the profiler (`profiler`, `settings`;
the modules it times in `builders`, the header and rows it writes in `headers`), the kit for devices
without quadnas (`kit`; what it runs there is `quadnas.portable`), adapting a table from a few whole
networks (`adaptation`), and end-to-end validation of a table (`validation`).

The names below are imported on first use, so that the command line's start-up reads the
profile settings' defaults (`settings`) without torch or numpy. A submodule never shares a name
with a function of the face (`profiler` holds `profile`, `validation` holds `validate`): once
imported, a submodule would hide the function.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.latency.measure.adaptation import adapt, check_networks, check_source
    from quadnas.latency.measure.backends import get_backend
    from quadnas.latency.measure.builders import space_at
    from quadnas.latency.measure.kit import import_results, write_kit
    from quadnas.latency.measure.profiler import profile
    from quadnas.latency.measure.settings import ProfileSettings
    from quadnas.latency.measure.validation import ValidationResult, load_table_space, validate

_HOMES = {
    "adapt": "adaptation",
    "check_networks": "adaptation",
    "check_source": "adaptation",
    "get_backend": "backends",
    "import_results": "kit",
    "write_kit": "kit",
    "profile": "profiler",
    "space_at": "builders",
    "ProfileSettings": "settings",
    "ValidationResult": "validation",
    "load_table_space": "validation",
    "validate": "validation",
}
__all__ = [  # the keys of _HOMES, sorted, for type checkers and linters
    "ProfileSettings",
    "ValidationResult",
    "adapt",
    "check_networks",
    "check_source",
    "get_backend",
    "import_results",
    "load_table_space",
    "profile",
    "space_at",
    "validate",
    "write_kit",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
