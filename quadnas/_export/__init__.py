"""Export one searched arch as a standalone QuadraNet: PyTorch, ONNX, OpenVINO IR or LiteRT.

`export` (pipeline) does it all in one call, as `quadnas export` does; its steps: `build_model`
(source) reads a search result into an `ExportSource`; `finetune` trains it stand-alone;
`export_model` (run) writes one format (formats), checks it against PyTorch and puts a YAML
sidecar beside it (sidecar); `verify_latency` (verify) times an export on a local runtime
against the table's prediction; `write_model_card` (card) writes the Markdown card. `load`
rebuilds a PyTorch export.

Private: the public face of `export`, `load` and the types they return is the `quadnas` package.
"""

from quadnas._export.card import card_path, check_card_target, write_model_card
from quadnas._export.finetune import finetune
from quadnas._export.formats import (
    FORMATS,
    SUFFIXES,
    ExportResult,
    Format,
    output_path,
    require_litert,
)
from quadnas._export.pipeline import Exported, VerifySettings, export
from quadnas._export.run import export_model, export_precision
from quadnas._export.sidecar import load, read_sidecar
from quadnas._export.source import INITS, ExportSource, build_model
from quadnas._export.verify import LatencyCheck, verify_latency

__all__ = [
    "FORMATS",
    "INITS",
    "SUFFIXES",
    "ExportResult",
    "ExportSource",
    "Exported",
    "Format",
    "LatencyCheck",
    "VerifySettings",
    "build_model",
    "card_path",
    "check_card_target",
    "export",
    "export_model",
    "export_precision",
    "finetune",
    "load",
    "output_path",
    "read_sidecar",
    "require_litert",
    "verify_latency",
    "write_model_card",
]
