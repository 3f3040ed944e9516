"""Latency: tables of per-op-spec latencies, finding them by device, and predicting from them.

`table` (LatencyTable: format, validation), `devices` (resolve `cpu` / a name / a path),
`predictor` (LatencyPredictor), `model` (the cost model behind the shipped estimated tables).
"""

from quadnas.latency.devices import list_tables, load_device_table, resolve_device, user_tables_dir
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import Calibration, LatencyTable, TableMeta

__all__ = ["Calibration", "LatencyPredictor", "LatencyTable", "TableMeta", "list_tables", "load_device_table",
           "resolve_device", "user_tables_dir"]
