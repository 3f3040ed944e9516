"""Export one searched arch as a standalone QuadraNet: PyTorch, ONNX, OpenVINO IR or LiteRT.

`build_model` (source) reads a search result into an `ExportSource`; `finetune` trains it
stand-alone; `export_model` (run) writes one format (formats), checks it against PyTorch and puts
a YAML sidecar beside it (sidecar); `load` rebuilds a PyTorch export; `verify_latency` (verify)
times an export on a local runtime against the table's prediction; `write_model_card` (card)
writes the Markdown card.
"""

from quadnas.export.card import card_path, check_card_target, write_model_card
from quadnas.export.finetune import finetune
from quadnas.export.formats import (
    FORMATS,
    SUFFIXES,
    ExportResult,
    Format,
    import_openvino,
    output_path,
    require_litert,
)
from quadnas.export.run import export_model, export_precision
from quadnas.export.sidecar import load, read_sidecar
from quadnas.export.source import INITS, ExportSource, build_model
from quadnas.export.verify import LatencyCheck, verify_latency

__all__ = [
    "FORMATS",
    "INITS",
    "SUFFIXES",
    "ExportResult",
    "ExportSource",
    "Format",
    "LatencyCheck",
    "build_model",
    "card_path",
    "check_card_target",
    "export_model",
    "export_precision",
    "finetune",
    "import_openvino",
    "load",
    "output_path",
    "read_sidecar",
    "require_litert",
    "verify_latency",
    "write_model_card",
]
