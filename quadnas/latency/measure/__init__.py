"""Measuring latency on real hardware: runtimes (`backends`), the profiler (`_profile`, `settings`;
the modules it times in `builders`, the header and rows it writes in `headers`), the kit for devices
without quadnas (`kit`; what it runs there is `quadnas.portable`), adapting a table from a few whole
networks (`_adapt`), and end-to-end validation of a table (`_validate`).

The names below are imported on first use, so that the command line's start-up reads the
profile settings' defaults (`settings`) without torch or numpy. The modules behind the face's
functions `profile`, `adapt` and `validate` are private and named after them: a public module of
that name, once imported, would hide the function.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.latency.measure._adapt import adapt, check_networks, check_source
    from quadnas.latency.measure._profile import profile
    from quadnas.latency.measure._validate import ValidationResult, load_table_space, validate
    from quadnas.latency.measure.backends import get_backend
    from quadnas.latency.measure.builders import space_at
    from quadnas.latency.measure.kit import import_results, write_kit
    from quadnas.latency.measure.settings import ProfileSettings

_HOMES = {
    "adapt": "_adapt",
    "check_networks": "_adapt",
    "check_source": "_adapt",
    "get_backend": "backends",
    "import_results": "kit",
    "write_kit": "kit",
    "profile": "_profile",
    "space_at": "builders",
    "ProfileSettings": "settings",
    "ValidationResult": "_validate",
    "load_table_space": "_validate",
    "validate": "_validate",
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
