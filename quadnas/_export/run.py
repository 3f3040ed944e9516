"""`export_model`: one file in one format, checked against PyTorch, with its YAML sidecar beside it."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import cast

import yaml

from quadnas._export.formats import (
    ExportResult,
    FileOptions,
    Format,
    Precision,
    output_path,
    write_format,
)
from quadnas._export.quantize import write_int8
from quadnas._export.sidecar import check_sidecar_target, model_info, sidecar_path, sidecar_record
from quadnas._export.source import ExportSource
from quadnas.errors import QuadnasError
from quadnas.latency.precision import INT8, file_precision
from quadnas.nn.onnx import ONNX_OPSET


def export_precision(searched: str | None, given: str | None, fmt: Format) -> tuple[Precision, str | None]:
    """The precision to export `fmt` at, and a warning or None: `given`, else the precision of the tables
    the search predicted with (`searched`: the record's int8 or fp32; a torch state dict: fp32), else fp32.
    A `given` one that mixes INT8 with the search's float (or the reverse) is exported as asked, with a
    warning: its latency is not what the search predicted."""
    if given is None:
        return ("int8" if searched == INT8 and fmt != "torch" else "fp32"), None
    precision = cast(Precision, given)  # FileOptions.check refuses any other
    if searched is not None and file_precision(searched) != file_precision(precision):
        return precision, (
            f"the search predicted {searched} latencies but --precision is {precision}: this export's latency "
            f"is not what the search predicted (drop --precision to export {searched})"
        )
    return precision, None


def export_model(
    source: ExportSource,
    fmt: Format,
    out: str | Path,
    resolution: int | None = None,
    opset: int | None = None,
    precision: Precision = "fp32",
    static_batch: int | None = None,
) -> ExportResult:
    """Write `source` in `fmt` at `resolution` (default: the space's deployment resolution).

    ONNX and IR files are written with `opset` (default 17, as the latency tables) and carry
    `sidecar.model_info`; `precision` fp16 stores an IR's weights in FP16, int8 quantizes the file
    (`quantize.write_int8`); `static_batch` fixes an ONNX or IR file's batch (else any batch runs). The
    written file is read back and run on random inputs of batch 1 and 3 (and of the static batch);
    a max abs difference to PyTorch above 1e-3 (1e-2 with FP16 weights) of the logits' scale is an
    error; an INT8 file is checked by its accuracy. A YAML sidecar goes beside it (`sidecar_path`).
    """
    options = FileOptions(ONNX_OPSET if opset is None else opset, precision, static_batch=static_batch).check(fmt)
    if source.weights == "untrained":
        meta = source.checkpoint_meta
        assert meta is not None  # an untrained network stands in for a proxy checkpoint's (source._from_proxy)
        raise QuadnasError(
            f"supernet {source.checkpoint} is a width-{source.proxy_width:g} proxy: it ranked the archs, but its "
            f"weights do not fit the full-width network. Add --finetune-epochs N (e.g. 10) to train the arch "
            f"stand-alone on {meta.dataset.source} first, pass --checkpoint with a full-width "
            f"supernet (`quadnas train`), or --init random for latency work"
        )
    out = output_path(fmt, out)
    sidecar = sidecar_path(out)
    check_sidecar_target(sidecar)
    resolution = source.space.check_resolution(resolution or source.space.config.resolution)
    shape = (source.space.config.in_channels, resolution, resolution)
    options = replace(options, metadata=model_info(source, resolution, options.static_batch))
    parity: dict[int, float] = {}
    bound, int8 = math.nan, None
    if options.precision == "int8":
        files, runtime, int8 = write_int8(source, fmt, shape, out, options)
    else:
        files, runtime, parity, bound = write_format(source.model, fmt, shape, out, options)
    result = ExportResult(
        format=fmt,
        path=out,
        files=[*files, sidecar],
        sidecar=sidecar,
        resolution=resolution,
        input_shape=(1, *shape),
        runtime=runtime,
        parity=parity,
        options=options,
        parity_bound=bound,
        int8=int8,
    )
    sidecar.write_text(yaml.safe_dump(sidecar_record(source, result), sort_keys=False))
    return result
