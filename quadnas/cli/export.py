"""`quadnas export`: a searched arch as a standalone network (PyTorch, ONNX, OpenVINO IR, LiteRT) with a model card."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from quadnas.cli.common import console, err_console, positive_int
from quadnas.cli.json_output import add_json_flag, print_json
from quadnas.latency import BACKEND_NAMES

if TYPE_CHECKING:
    from quadnas._export import Exported, ExportResult, ExportSource, LatencyCheck

EXIT_OVER_BUDGET = 1
# The flags passed to `quadnas.export` under their own names.
EXPORT_KEYS = (
    "out",
    "arch",
    "space",
    "checkpoint",
    "init",
    "seed",
    "resolution",
    "opset",
    "precision",
    "static_batch",
    "finetune_epochs",
    "data",
    "lr",
    "train_device",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="export an arch as a standalone network (torch, onnx, openvino, litert)",
        description="Build the standalone QuadraNet of a search result (or of --arch), with weights inherited "
        "from the supernet checkpoint (or --init random for latency work), optionally fine-tune it, write it "
        "in one format with a YAML sidecar and a Markdown model card beside it (model.onnx.yaml, model.onnx.md), "
        "and check the written file against PyTorch.",
    )
    p.add_argument("result", nargs="?", help="runs/<study>/best.yaml of a search")
    p.add_argument("--arch", help="an arch instead of a search result, e.g. k3e2-k7e4-id-...")
    p.add_argument("--space", help="search space name or YAML (default: the result's, else quadranet-t)")
    p.add_argument("--checkpoint", help="supernet checkpoint (default: the one the search used)")
    p.add_argument("--init", default="inherit", help="inherit (weights from the checkpoint, default) or random")
    p.add_argument("--seed", type=int, default=0, help="seed of --init random and of fine-tuning")
    p.add_argument("--format", help="torch, onnx, openvino or litert (default: from the --out suffix)")
    p.add_argument("--out", required=True, help="output file: model.pt, model.onnx, model.xml (+ .bin) or model.tflite")
    p.add_argument(
        "--resolution",
        type=positive_int,
        help="input resolution of the export (default: the space's deployment resolution)",
    )
    p.add_argument(
        "--opset", type=positive_int, help="ONNX opset of onnx and openvino exports (default 17, as the latency tables)"
    )
    p.add_argument(
        "--precision",
        default=None,
        help="fp32, fp16 (OpenVINO IR weights, parity checked to 1e-2) or int8 (ONNX and OpenVINO, "
        "calibrated on the checkpoint's data; FP32 and INT8 accuracy reported side by side); default: the "
        "precision of the tables the search predicted with (best.yaml's precision), else fp32",
    )
    p.add_argument(
        "--static-batch",
        type=positive_int,
        metavar="N",
        help="fix the batch dimension of an ONNX or OpenVINO file at N (default: dynamic, any batch runs); "
        "for runtimes and compilers that need static shapes",
    )
    p.add_argument("--finetune-epochs", type=positive_int, help="fine-tune stand-alone for N epochs first")
    p.add_argument("--data", help="data to fine-tune on (default: the checkpoint's)")
    p.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate (AdamW, cosine; default 5e-4)")
    p.add_argument("--train-device", default="cpu", help="torch device of fine-tuning: cpu (default), cuda or cuda:N")
    p.add_argument(
        "--verify-latency",
        action="store_true",
        help="time the export here and compare it with the predicted latency and the budget",
    )
    p.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        help="runtime that times it (default: the table's backend, else onnxruntime)",
    )
    p.add_argument("--device", help="latency table to compare with (default: the search's device)")
    p.add_argument("--threads", type=positive_int, help="runtime threads (default: the table's, else 1)")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        help="wall (latency) or cpu (CPU time, 1 thread; steadier on a busy machine); default: the table's, else wall",
    )
    p.add_argument("--budget", help="latency budget with a unit, e.g. 30ms (default: the search's)")
    p.add_argument(
        "--rounds", type=positive_int, help="timed rounds of >= 50 ms (one call or more) after warm-up (default 30)"
    )
    add_json_flag(p, "export")
    p.add_argument("--warn-only", action="store_true", help="only warn when the measured latency is over budget")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from quadnas._export import VerifySettings, export
    from quadnas.cli.progress import progress_for
    from quadnas.errors import QuadnasError

    settings = VerifySettings(args.backend, args.device, args.threads, args.clock, args.budget, args.rounds)
    unused = settings.given() + (["--warn-only"] if args.warn_only else [])
    if unused and not args.verify_latency:
        raise QuadnasError(f"{', '.join(unused)} only apply with --verify-latency: add it or drop them")
    done = export(
        args.result,
        **{key: getattr(args, key) for key in EXPORT_KEYS},
        fmt=args.format,
        verify=settings if args.verify_latency else False,
        progress=progress_for(err_console),
    )
    for note in done.notes:
        err_console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
    if args.json:
        print_json("export", export_fields(done))
    else:
        show_result(done.source, done.result)
        if done.check is not None:
            show_check(done.check)
        console.print(f"model card: {done.card}", highlight=False)
    return budget_verdict(done, args.warn_only)


def budget_verdict(done: Exported, warn_only: bool) -> int:
    """The exit code: over budget (beyond the table's calibration error) fails unless `warn_only` makes it a warning."""
    check = done.check
    if check is None or not done.over_budget or check.budget is None or check.limit is None:
        return 0
    message = (
        f"measured {check.measured_ms:.3f} ms exceeds the budget {check.budget.ms:g} ms by more than "
        f"the table's calibration error ({check.limit.ms:.3f} ms allowed)"
    )
    if warn_only:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        return 0
    err_console.print(
        f"[bold red]over budget:[/] {message}; pass --warn-only to accept", highlight=False, soft_wrap=True
    )
    return EXIT_OVER_BUDGET


def show_result(source: ExportSource, result: ExportResult) -> None:
    """The files written, their parity and the network's accuracy, as text."""
    written = ", ".join(str(p) for p in result.files)
    console.print(f"wrote {written}", highlight=False, soft_wrap=True)
    if result.int8 is not None:
        c = result.int8
        console.print(
            f"INT8 ({result.runtime}, calibrated on {c.calibration_images} training images): accuracy "
            f"{c.int8_accuracy:.4f} vs FP32 {c.fp32_accuracy:.4f} ({-c.accuracy_drop:+.4f}) on the {c.on}; "
            f"largest logit difference {c.max_logit_diff:.3g}",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        f"parity: max abs difference to PyTorch {result.max_abs_diff:.2g} on {result.runtime} "
        f"(batch {', '.join(str(b) for b in result.parity)}; {result.options.precision} weights, "
        f"bound {result.parity_bound:.2g}: {result.options.tolerance:g} of the logits' scale)",
        highlight=False,
    )
    if source.accuracy is not None:
        console.print(f"accuracy {source.accuracy:.4f} ({source.accuracy_on})", highlight=False, soft_wrap=True)


def export_fields(done: Exported) -> dict[str, Any]:
    """The `quadnas.export/1` document: what was written, its parity, accuracy and latency check."""
    source, result, check = done.source, done.result, done.check
    return {
        "format": result.format,
        "path": result.path,
        "files": result.files,
        "sidecar": result.sidecar,
        "model_card": done.card,
        "arch": str(source.arch),
        "space": source.space.name,
        "weights": source.weights,
        "resolution": result.resolution,
        "input_shape": list(result.input_shape),
        "onnx_opset": None if result.format in ("torch", "litert") else result.options.opset,
        "weights_precision": result.options.precision,
        "parity": {
            "runtime": result.runtime,
            "max_abs_diff": {str(batch): diff for batch, diff in result.parity.items()},
            "tolerance": None if result.int8 else result.parity_bound,
            "tolerance_of_logit_scale": None if result.int8 else result.options.tolerance,
        },
        "int8": None
        if result.int8 is None
        else {
            "calibration_images": result.int8.calibration_images,
            "fp32_accuracy": result.int8.fp32_accuracy,
            "int8_accuracy": result.int8.int8_accuracy,
            "max_logit_diff": result.int8.max_logit_diff,
            "on": result.int8.on,
        },
        "accuracy": source.accuracy,
        "accuracy_on": source.accuracy_on,
        "latency_check": None if check is None else check_fields(check),
    }


def check_fields(check: LatencyCheck) -> dict[str, Any]:
    """A latency check as JSON fields; `passed` is null where no budget gate applies."""
    return {
        "measured_ms": check.measured_ms,
        "p10_ms": check.p10_ms,
        "p90_ms": check.p90_ms,
        "runs": check.runs,
        "measured_what": check.measured_what,
        "backend": dict(check.backend),
        "table": check.table,
        "table_provenance": check.table_provenance,
        "predicted_ms": check.predicted_ms,
        "error_pct": check.error_pct,
        "calibration_error_pct": check.tolerance_pct,
        "budget_ms": None if check.budget is None else check.budget.ms,
        "limit_ms": None if check.limit is None else check.limit.ms,
        "passed": check.passed,
        "note": check.note or None,
    }


def show_check(check: LatencyCheck) -> None:
    """Measured vs predicted vs budget, as a small table."""
    from rich.markup import escape
    from rich.table import Table

    b = check.backend
    view = Table(
        "",
        "ms",
        "",
        title=f"latency: {b['backend']} {b['backend_version']} on {b['device']}, "
        f"{b['threads']} thread(s), {b['clock']} clock",
    )
    view.add_row(
        "measured",
        f"{check.measured_ms:.3f}",
        f"median of {check.runs} (p10 {check.p10_ms:.3f}, p90 {check.p90_ms:.3f}); {check.measured_what}",
    )
    if check.predicted_ms is not None:
        error = "unknown" if check.tolerance_pct is None else f"{check.tolerance_pct:.1f}%"
        view.add_row(
            "predicted",
            f"{check.predicted_ms:.3f}",
            f"{check.table} ({check.table_provenance}); {check.error_pct:+.1f}% vs measured; calibration error {error}",
        )
    if check.budget is not None and check.limit is not None:
        verdict = {None: "not gated", True: "within", False: "OVER"}[check.passed]
        view.add_row(
            "budget", f"{check.budget.ms:g}", f"limit {check.limit.ms:.3f} with the calibration error: {verdict}"
        )
    console.print(view)
    if check.note:
        console.print(f"[yellow]note:[/] {escape(check.note)}", highlight=False, soft_wrap=True)
