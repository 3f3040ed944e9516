"""Latency: tables of per-op-spec latencies, finding them by device, and predicting from them.

`table` (LatencyTable: format, validation), `devices` (resolve `cpu` / a name / a path),
`predictor` (LatencyPredictor), `model` (the cost model behind the shipped estimated tables).

The names below are imported on first use, so that a light submodule (`names`, `settings`,
`kit_runner`) does not pull in pandas for the command line's start-up.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.latency.devices import list_tables, load_device_table, resolve_device
    from quadnas.latency.names import user_tables_dir
    from quadnas.latency.predictor import LatencyPredictor
    from quadnas.latency.table import Calibration, LatencyTable, TableMeta

_HOMES = {
    "Calibration": "table",
    "LatencyTable": "table",
    "TableMeta": "table",
    "LatencyPredictor": "predictor",
    "list_tables": "devices",
    "load_device_table": "devices",
    "resolve_device": "devices",
    "user_tables_dir": "devices",
}
__all__ = [  # the keys of _HOMES, listed for type checkers and linters
    "Calibration",
    "LatencyPredictor",
    "LatencyTable",
    "TableMeta",
    "list_tables",
    "load_device_table",
    "resolve_device",
    "user_tables_dir",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'quadnas.latency' has no attribute '{name}'")
