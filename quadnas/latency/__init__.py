"""Latency: tables of per-op-spec latencies, finding them by device, and predicting from them.

`table` (LatencyTable: format, validation), `devices` (resolve `cpu` / a name / a path),
`predictor` (LatencyPredictor), `budget` (Budget), `host` (the host a table was measured on),
`names` (light names the command line shows), `precision` (INT8 and float never mix),
`calibration` and `adaptation` (the two fits from whole networks). Measuring
is `quadnas.latency.measure`, the cost model behind the shipped estimated tables
`quadnas.latency.estimate`.

The names below are imported on first use, so that a light submodule (`names`, `precision`)
does not pull in pandas for the command line's start-up.
"""

from typing import TYPE_CHECKING

from quadnas._lazy import lazy_attributes

if TYPE_CHECKING:  # typed names for the lazy attributes below
    from quadnas.latency.budget import Budget
    from quadnas.latency.devices import (
        SHIPPED_TABLES_DIR,
        TableFile,
        list_tables,
        load_device_table,
        resolve_device,
        table_files,
    )
    from quadnas.latency.header import Calibration, TableMeta
    from quadnas.latency.host import Host, foreign_host_note, host_status
    from quadnas.latency.names import BACKEND_NAMES, user_tables_dir
    from quadnas.latency.precision import INT8_BACKENDS, PROFILE_PRECISIONS, check_same_precision
    from quadnas.latency.predictor import LatencyPredictor
    from quadnas.latency.table import LatencyTable

_HOMES = {
    "Budget": "budget",
    "SHIPPED_TABLES_DIR": "devices",
    "TableFile": "devices",
    "list_tables": "devices",
    "load_device_table": "devices",
    "resolve_device": "devices",
    "table_files": "devices",
    "Host": "host",
    "foreign_host_note": "host",
    "host_status": "host",
    "BACKEND_NAMES": "names",
    "user_tables_dir": "names",
    "INT8_BACKENDS": "precision",
    "PROFILE_PRECISIONS": "precision",
    "check_same_precision": "precision",
    "LatencyPredictor": "predictor",
    "Calibration": "header",
    "LatencyTable": "table",
    "TableMeta": "header",
}
__all__ = [  # the keys of _HOMES, sorted, for type checkers and linters
    "BACKEND_NAMES",
    "Budget",
    "Calibration",
    "Host",
    "INT8_BACKENDS",
    "LatencyPredictor",
    "LatencyTable",
    "PROFILE_PRECISIONS",
    "SHIPPED_TABLES_DIR",
    "TableFile",
    "TableMeta",
    "check_same_precision",
    "foreign_host_note",
    "host_status",
    "list_tables",
    "load_device_table",
    "resolve_device",
    "table_files",
    "user_tables_dir",
]


__getattr__ = lazy_attributes(__name__, _HOMES)
