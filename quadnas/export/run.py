"""`export_model`: one file in one format, checked against PyTorch, with its YAML sidecar beside it."""

from __future__ import annotations

from pathlib import Path

import yaml

from quadnas.errors import QuadnasError
from quadnas.export.formats import ExportResult, Format, output_path, write_format
from quadnas.export.sidecar import check_sidecar_target, sidecar_path, sidecar_record
from quadnas.export.source import ExportSource


def export_model(source: ExportSource, fmt: Format, out: str | Path, resolution: int | None = None) -> ExportResult:
    """Write `source` in `fmt` at `resolution` (default: the space's deployment resolution).

    The written file is read back and run on random inputs of batch 1 and 3; a max abs
    difference to PyTorch above 1e-4 is an error. A YAML sidecar goes beside it (`sidecar_path`).
    """
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
    files, runtime, parity = write_format(source.model, fmt, shape, out)
    result = ExportResult(fmt, out, files + [sidecar], sidecar, resolution, (1, *shape), runtime, parity)
    sidecar.write_text(yaml.safe_dump(sidecar_record(source, result), sort_keys=False))
    return result
