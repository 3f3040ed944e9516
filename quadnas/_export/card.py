"""A model card (`model.onnx.md` beside `model.onnx`): arch, size, accuracy and on what data,
predicted latency on every table."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from quadnas._export.formats import (
    INPUT_NAME,
    OPENVINO_CPU_CONFIG,
    OUTPUT_NAME,
    ExportResult,
    benchmark_app_command,
)
from quadnas._export.sidecar import resolution_note
from quadnas._export.source import ExportSource
from quadnas._export.verify import LatencyCheck
from quadnas._version import __version__
from quadnas.errors import QuadnasError
from quadnas.latency.devices import table_files
from quadnas.latency.predictor import LatencyPredictor
from quadnas.nn.stats import model_stats
from quadnas.record import SearchRecord
from quadnas.space import Arch, SearchSpace

CARD_TITLE = "# QuadraNet `"  # every card starts so; a file that does not is never overwritten


@dataclass(frozen=True)
class TablePrediction:
    """One table's prediction for an arch, with the table's provenance; `ms` None where it cannot predict."""

    table: str
    device: str
    aliases: tuple[str, ...]
    runtime: str
    provenance: str
    ms: float | None
    expected_error: str
    note: str = ""
    backend: str = ""
    threads: int | None = None
    target: str | None = None  # what the runtime ran on (OpenVINO: CPU, GPU, MYRIAD), where the table says


def table_predictions(space: SearchSpace, arch: Arch) -> list[TablePrediction]:
    """The arch's predicted latency on every known table that serves this space (covers its op specs)."""
    found = []
    for file in table_files():
        table = file.table
        if table is None:
            continue  # a broken table is reported by `quadnas tables`; it must not stop an export
        meta = table.meta
        if meta.resolution != space.config.resolution or table.missing(space.all_op_specs()):
            continue
        try:
            ms, note = LatencyPredictor(table, space).predict(arch), ""
        except QuadnasError as e:
            ms, note = None, str(e)
        c = meta.calibration
        error = (
            f"{c.mape_pct:.1f}% mean, {c.max_err_pct:.1f}% max ({c.networks} networks)"
            if c.mape_pct is not None and c.max_err_pct is not None
            else "unknown"
        )
        threads = f", {meta.threads} thread(s)" if meta.threads else ""
        runtime = f"{meta.backend} {meta.backend_version}, {meta.precision}, batch {meta.batch}{threads}"
        found.append(
            TablePrediction(
                table.name,
                meta.device,
                tuple(meta.aliases),
                runtime,
                meta.provenance,
                ms,
                error,
                note,
                meta.backend,
                meta.threads,
                meta.target,
            )
        )
    return found


def render_model_card(
    source: ExportSource,
    result: ExportResult,
    check: LatencyCheck | None = None,
    predictions: list[TablePrediction] | None = None,
) -> str:
    """The model card's Markdown."""
    space, model = source.space, source.model
    params, macs = model_stats(model, result.input_shape)
    predictions = table_predictions(space, source.arch) if predictions is None else predictions
    res = result.resolution
    static = result.options.static_batch
    batch = "batch" if static is None else str(static)
    lines = [
        f"{CARD_TITLE}{source.arch}`",
        "",
        f"Exported by quadnas {__version__} on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"as **{result.format}** (`{result.path.name}`).",
        "",
        "## Architecture",
        "",
        f"- arch: `{source.arch}` in space `{space.name}` (fingerprint `{space.fingerprint()}`, {space.source})",
        *(
            f"- stage {i + 1} (dim {space.dims[i]}): {' '.join(str(b) for b in blocks)}"
            for i, blocks in enumerate(space.stages_of(source.arch))
        ),
        f"- parameters: {params:,} ({_scaled(params)})",
        f"- MACs at {res}x{res}: {macs:,} ({_scaled(macs)}; convolutions and linear layers, "
        "counted by torch.utils.flop_counter as FLOPs / 2)",
        "",
        "## Input and output",
        "",
        f"- input `{INPUT_NAME}`: float32 NCHW, shape ({batch}, {space.config.in_channels}, {res}, {res}); "
        + ("the batch dimension is dynamic" if static is None else f"the batch is fixed at {static} (--static-batch)"),
        f"- output `{OUTPUT_NAME}`: ({batch}, {model.num_classes}) logits",
        f"- resolution: {resolution_note(source, res)}",
        f"- normalisation: {_normalisation(source)}",
        f"- classes: {', '.join(source.classes) if source.classes else 'none (random weights)'}",
        "",
        "## Weights and accuracy",
        "",
        f"- weights: {_weights(source)}",
        f"- accuracy: {_accuracy(source)}",
        f"- {_parity(result)}",
        "",
        "## Predicted latency",
        "",
        f"At the space's deployment resolution ({space.config.resolution} px), batch 1, for a head of "
        f"{space.config.num_classes} classes, on every latency table made for this space:",
        "",
        "| table | device (aliases) | runtime | provenance | predicted | expected error |",
        "|---|---|---|---|---|---|",
        *(
            f"| {p.table} | {p.device}{f' ({chr(44).join(p.aliases)})' if p.aliases else ''} | {p.runtime} | "
            f"{p.provenance} | {_ms(p.ms)} | {p.expected_error} |"
            for p in predictions
        ),
    ]
    if not predictions:
        lines.append("| (no table for this space: measure one with `quadnas profile`) | | | | | |")
    notes = [f"- {p.table}: {p.note}" for p in predictions if p.note]
    lines += ["", *notes] if notes else []
    lines += [
        "",
        "`estimated` tables come from an operator cost model fitted to published whole-model "
        "latencies; `measured` ones were timed on the device (see `quadnas tables`).",
    ]
    if source.record is not None:
        lines += ["", _searched(source, source.record)]
    if check is not None:
        lines += ["", "## Measured latency", "", *measured_lines(check)]
    lines += ["", "## Use", "", "```python", *_usage(result), "```", *_reproduce(result, predictions), ""]
    return "\n".join(lines)


def _searched(source: ExportSource, record: SearchRecord) -> str:
    """What the search predicted on each of its devices, against each budget."""
    each = "; ".join(f"{e.latency_ms} ms on `{e.device}` against a budget of {e.budget_ms} ms" for e in record.devices)
    return f"Search: `{source.record_path}` predicted {each}."


def measured_lines(check: LatencyCheck) -> list[str]:
    """The verify-latency figures as Markdown bullet points."""
    b = check.backend
    lines = [
        f"- measured: {check.measured_ms:.3f} ms median (p10 {check.p10_ms:.3f}, p90 {check.p90_ms:.3f}, "
        f"{check.runs} calls) of {check.measured_what}",
        f"- on: {b['backend']} {b['backend_version']} ({b['precision']}), {b['target']} = {b['device']}, "
        f"{b['threads']} thread(s), batch 1, {b['clock']} clock",
    ]
    if check.predicted_ms is not None:
        lines.append(
            f"- predicted by `{check.table}` ({check.table_provenance}): {check.predicted_ms:.3f} ms "
            f"({check.error_pct:+.1f}% vs measured; table's calibration error "
            f"{'unknown' if check.tolerance_pct is None else f'{check.tolerance_pct:.1f}%'})"
        )
    if check.budget is not None and check.limit is not None:
        verdict = {None: "not gated", True: "within", False: "OVER"}[check.passed]
        lines.append(
            f"- budget: {check.budget.ms:g} ms; limit with the calibration error {check.limit.ms:.3f} ms: {verdict}"
        )
    if check.note:
        lines.append(f"- note: {check.note}")
    return lines


def card_path(export_path: Path) -> Path:
    """Where the card of an export goes: beside it, named after the whole file (`model.onnx` -> `model.onnx.md`),
    as its sidecar is, so exports that share a stem keep their own cards."""
    return export_path.with_name(f"{export_path.name}.md")


def check_card_target(path: Path) -> None:
    """Refuse to overwrite a Markdown file that is not a model card (e.g. your own notes.onnx.md)."""
    if path.exists() and not path.read_text(errors="replace").startswith(CARD_TITLE):
        raise QuadnasError(
            f"the model card {path} would overwrite a file that is not a quadnas model card: choose another --out name"
        )


def write_model_card(
    source: ExportSource, result: ExportResult, check: LatencyCheck | None = None, path: str | Path | None = None
) -> Path:
    """Write the card to `card_path(export)` or to `path`; returns its path."""
    path = Path(path) if path is not None else card_path(result.path)
    path.write_text(render_model_card(source, result, check))
    return path


def _scaled(count: int) -> str:
    return f"{count / 1e9:.2f} G" if count >= 1e9 else f"{count / 1e6:.2f} M"


def _ms(ms: float | None) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:.2f} ms" if ms >= 1 else f"{ms:.3f} ms"


def _accuracy(source: ExportSource) -> str:
    if source.accuracy is None:
        return "not measured"
    return f"{source.accuracy:.4f} top-1 on the {source.accuracy_on}"


def _normalisation(source: ExportSource) -> str:
    if source.mean is None:
        return "none (random weights)"
    assert source.std is not None  # set with the mean, from one dataset
    mean = ", ".join(f"{v:.4f}" for v in source.mean)
    std = ", ".join(f"{v:.4f}" for v in source.std)
    return f"pixels scaled to [0, 1], then (x - mean) / std per channel with mean ({mean}) and std ({std})"


def _weights(source: ExportSource) -> str:
    if source.weights == "random":
        return "freshly initialised (random): for latency measurements only, not for predictions"
    if source.weights == "trained":
        return (
            f"trained stand-alone from scratch on {source.data} (the width-{source.proxy_width:g} proxy "
            f"supernet `{source.checkpoint}` ranked the arch in the search)"
        )
    where = f"supernet checkpoint `{source.checkpoint}` (sha256 {source.checkpoint_sha})"
    if source.weights == "fine-tuned":
        return f"inherited from the {where}, then fine-tuned stand-alone on {source.data}"
    return f"inherited from the {where}, trained on {source.data}"


def _parity(result: ExportResult) -> str:
    """How the file was checked against PyTorch: its difference and bound, or INT8 accuracy side by side."""
    if result.int8 is not None:
        c = result.int8
        return (
            f"INT8 ({result.runtime}, calibrated on {c.calibration_images} training images): accuracy "
            f"{c.int8_accuracy:.4f} vs FP32 {c.fp32_accuracy:.4f} on the {c.on}; largest logit difference "
            f"{c.max_logit_diff:.3g}"
        )
    return (
        f"parity: max abs difference to PyTorch {result.max_abs_diff:.2g} on {result.runtime} (random inputs, "
        f"batch {' and '.join(str(b) for b in result.parity)}, {result.options.precision} weights; limit "
        f"{result.parity_bound:.2g}, {result.options.tolerance:g} of the logits' scale)"
    )


def _usage(result: ExportResult) -> list[str]:
    name = result.path.name
    if result.format == "torch":
        return [
            "import quadnas",
            f'model = quadnas.load("{name}")  # reads {result.sidecar.name} beside it',
            "logits = model(x)  # x: normalised float32 NCHW tensor",
        ]
    if result.format == "onnx":
        return [
            "import onnxruntime as ort",
            f'session = ort.InferenceSession("{name}")',
            'logits = session.run(None, {"input": x})[0]  # x: normalised float32 NCHW array',
        ]
    if result.format == "litert":
        int8 = result.options.precision == "int8"
        return [
            "from ai_edge_litert.interpreter import Interpreter",
            f'interpreter = Interpreter(model_path="{name}"); interpreter.allocate_tensors()',
            "inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]",
            'interpreter.set_tensor(inp["index"], x)  # x: normalised float32 NCHW array of batch 1'
            + (', quantized by inp["quantization"] (scale, zero point) to int8' if int8 else ""),
            'interpreter.invoke(); logits = interpreter.get_tensor(out["index"])'
            + ('  # int8: dequantize by out["quantization"]' if int8 else ""),
        ]
    return [
        "import openvino as ov",
        f'model = ov.Core().compile_model("{name}", "CPU", {json.dumps(OPENVINO_CPU_CONFIG)})  # float32, as checked',
        "logits = model(x)[0]  # x: normalised float32 NCHW array",
    ]


def _reproduce(result: ExportResult, predictions: list[TablePrediction]) -> list[str]:
    """How to run and time the file as quadnas checked it and its OpenVINO tables timed networks."""
    if result.format == "torch":
        return []
    compile_call = f'`core.compile_model("{result.path.name}", "CPU", {json.dumps(OPENVINO_CPU_CONFIG)})`'
    if result.format == "openvino":
        checked = f"The parity check ran this file on OpenVINO's CPU plugin in float32: compile with {compile_call}."
        reader = ""
    else:
        checked = (
            "The parity check ran this file on onnxruntime (float32). On OpenVINO, which times its tables in "
            f"float32, compile with {compile_call}."
        )
        reader = " (OpenVINO reads ONNX files too)"
    tables = [  # tables timed on OpenVINO's CPU plugin, as the command runs it
        p
        for p in predictions
        if p.backend == "openvino" and p.provenance == "measured" and str(p.target or "CPU").upper() == "CPU"
    ]
    commands = [
        f"# as table {p.table} was timed\n{benchmark_app_command(result.path, result.input_shape, p.threads)}"
        for p in tables
    ] or [benchmark_app_command(result.path, result.input_shape)]
    return [
        "",
        "## Reproduce the checked outputs and the predicted latency",
        "",
        checked,
        "Without the hint it infers in bf16 on CPUs with bf16 instructions (AVX-512 BF16, AMX), and both its "
        "logits and its latency differ from what quadnas checked and predicted.",
        "",
        f"Time it at batch 1, as the tables were timed, with `benchmark_app`{reader} (the command gives the shape: "
        "it reshapes a file of another batch):",
        "",
        "```sh",
        *commands,
        "```",
    ]
