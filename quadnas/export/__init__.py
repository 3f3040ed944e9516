"""Export one searched arch as a standalone QuadraNet: PyTorch, ONNX, OpenVINO IR or LiteRT.

`export` (pipeline) does it all in one call, as `quadnas export` does; its steps: `build_model`
(source) reads a search result into an `ExportSource`; `finetune` trains it stand-alone;
`export_model` (run) writes one format (formats), checks it against PyTorch and puts a YAML
sidecar beside it (sidecar); `verify_latency` (verify) times an export on a local runtime
against the table's prediction; `write_model_card` (card) writes the Markdown card. `load`
rebuilds a PyTorch export.

This package is also `quadnas.export` the function: calling the module calls `export`, so the
face stays one name whether or not the package was imported first.
"""

import sys
import types
from typing import Any

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
from quadnas.export.pipeline import Exported, VerifySettings, export
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
    "import_openvino",
    "load",
    "output_path",
    "read_sidecar",
    "require_litert",
    "verify_latency",
    "write_model_card",
]


class _CallablePackage(types.ModuleType):
    """`quadnas.export(...)` is `quadnas.export.export(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Exported:
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
