"""The one torch -> ONNX writer: the profiler's op graphs and the exported networks come from it alike."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

ONNX_OPSET = 17  # what the latency tables were profiled with
ONNX_OPSETS = range(13, 22)  # what the exporter writes exactly (checked against onnxruntime by the tests)
# The TorchScript exporter announces its deprecation on every call; these two lines, and only these, are
# silenced. It still writes these ops exactly, needs no onnxscript, and exports faster than the dynamo exporter.
_DEPRECATION_NOTICES = (
    r"You are using the legacy TorchScript-based ONNX export",
    r"The feature will be removed\. Please remove usage of this function",
)


def write_onnx(
    module: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    *,
    input_name: str = "input",
    output_name: str = "output",
    dynamic_batch: bool = False,
    opset: int = ONNX_OPSET,
) -> Path:
    """Write `module` (in eval mode) as an ONNX graph of `opset` for inputs of `input_shape`.

    With `dynamic_batch` the first dimension of the input and the output is named `batch`
    and any batch size runs; otherwise the graph is fixed to `input_shape`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        for notice in _DEPRECATION_NOTICES:
            warnings.filterwarnings("ignore", message=notice, category=DeprecationWarning)
        torch.onnx.export(
            module.eval(),
            (torch.zeros(input_shape),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes=axes,
        )
    return path
