"""`export()`: a search result (or an arch) to one checked file with its sidecar and model card, in one call.

The library face of `quadnas export`, beside `quadnas.search`: build the network, optionally
fine-tune it, write and check the file (`export_model`), optionally time it against the
prediction and the budget (`verify_latency`), and write the model card. Every setting is
checked before anything is built or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from quadnas._export.card import card_path, check_card_target, write_model_card
from quadnas._export.finetune import finetune
from quadnas._export.formats import (
    FORMATS,
    SUFFIXES,
    ExportResult,
    FileOptions,
    Format,
    output_path,
    require_litert,
)
from quadnas._export.run import export_model, export_precision
from quadnas._export.source import ExportSource, Init, build_model
from quadnas._export.verify import LatencyCheck, verify_latency
from quadnas.accelerator import torch_device
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.devices import load_device_table
from quadnas.latency.precision import check_same_precision
from quadnas.nn.onnx import ONNX_OPSET
from quadnas.nn.quantize import import_openvino
from quadnas.progress import Progress
from quadnas.space import SearchSpace


@dataclass
class Exported:
    """What one `export()` call built and wrote."""

    source: ExportSource  # the network and what a deployment needs to know about it
    result: ExportResult  # the files written and their parity with PyTorch
    card: Path  # the Markdown model card beside the file
    check: LatencyCheck | None = None  # the measured latency; None without `verify=True`
    notes: list[str] = field(default_factory=list)  # what the caller should know (a precision the search did not use)

    @property
    def over_budget(self) -> bool:
        """Whether the measured latency missed the budget by more than the table's calibration error."""
        return self.check is not None and self.check.passed is False


@dataclass(frozen=True)
class VerifySettings:
    """How `export(verify=...)` times the file; None: the table's and the search's."""

    backend: str | None = None  # the runtime that times it (default: the table's, else onnxruntime)
    device: str | None = None  # the latency table to compare with (default: the search's first device)
    threads: int | None = None
    clock: str | None = None
    budget: str | None = None  # with a unit: 30ms
    rounds: int | None = None

    def given(self) -> list[str]:
        """The settings given, as the command line's flags."""
        return [f"--{name}" for name, value in vars(self).items() if value is not None]


def export(
    result: str | Path | None = None,
    *,
    out: str | Path,
    arch: str | None = None,
    fmt: str | None = None,
    space: SearchSpace | str | Path | None = None,
    checkpoint: str | Path | None = None,
    init: Init = "inherit",
    seed: int = 0,
    resolution: int | None = None,
    opset: int | None = None,
    precision: str | None = None,
    static_batch: int | None = None,
    finetune_epochs: int | None = None,
    data: str | None = None,
    lr: float = 5e-4,
    train_device: str = "cpu",
    verify: VerifySettings | bool = False,
    progress: Progress | None = None,
) -> Exported:
    """Export `result` (a search's best.yaml) or `arch` (text of `space`) to `out` in `fmt` (default: from
    `out`'s suffix), with a sidecar and a model card beside it.

    `init`, `checkpoint` and `seed` choose the weights (`build_model`); `finetune_epochs` trains the
    network stand-alone first on `data` (default: the checkpoint's) at `lr` on `train_device`; `resolution`, `opset`,
    `precision` (default: the search's) and `static_batch` shape the file (`export_model`). `verify`
    (True, or `VerifySettings`) times the written file here against the table's prediction and the
    budget; `Exported.over_budget` says whether it missed.
    """
    if (result is None) == (arch is None):
        raise QuadnasError("give either a search result (runs/<study>/best.yaml) or --arch TEXT, not both or neither")
    verify_settings = VerifySettings() if verify is True else verify or None
    path, file_format = _target(out, fmt)
    if data and not finetune_epochs:
        raise QuadnasError("--data only applies to fine-tuning: add --finetune-epochs N or drop --data")
    if finetune_epochs:
        torch_device(train_device)  # an unusable device fails before the network is built
    if checkpoint and init == "random":
        raise QuadnasError("--init random uses no checkpoint: drop --checkpoint, or drop --init random to inherit")
    budget = Budget.parse(verify_settings.budget) if verify_settings and verify_settings.budget else None
    if verify_settings and verify_settings.device:
        load_device_table(verify_settings.device)  # an unknown table fails before the export is built

    source = build_model(
        result if result is not None else str(arch), space=space, checkpoint=checkpoint, init=init, seed=seed
    )
    chosen, warning = export_precision(source.record.precision if source.record else None, precision, file_format)
    FileOptions(ONNX_OPSET if opset is None else opset, chosen, static_batch=static_batch).check(file_format)
    device = (verify_settings.device if verify_settings else None) or (
        source.record.devices[0].device if source.record else None
    )
    if verify_settings and device:  # mixed precisions fail before the export is written
        table = load_device_table(device)
        check_same_precision(table.name, table.meta.precision, chosen)
    if finetune_epochs:
        source = finetune(source, finetune_epochs, data=data, lr=lr, seed=seed, progress=progress, device=train_device)
    written = export_model(
        source, file_format, path, resolution=resolution, opset=opset, precision=chosen, static_batch=static_batch
    )
    check = None
    if verify_settings:
        s = verify_settings
        check = verify_latency(
            source,
            written,
            device=s.device,
            backend=s.backend,
            threads=s.threads,
            budget=budget,
            rounds=s.rounds,
            clock=s.clock,
        )
    card = write_model_card(source, written, check)
    return Exported(source, written, card, check, notes=[warning] if warning else [])


def _target(out: str | Path, fmt: str | None) -> tuple[Path, Format]:
    """The file to write and its format (given, else from `out`'s suffix); its card must be free to write,
    and the format's runtime installed."""
    given = fmt or next((f for f in FORMATS if str(out).lower().endswith(SUFFIXES[f])), None)
    if given is None:
        raise QuadnasError(f"cannot tell the format of --out {out}: pass --format ({', '.join(FORMATS)})")
    path = output_path(given, out)  # an unknown format is an error here
    check_card_target(card_path(path))
    if given == "openvino":
        import_openvino()
    if given == "litert":
        require_litert()
    return path, FORMATS[FORMATS.index(given)]
