"""What INT8 costs and buys a deployment: accuracy drop and the INT8-aware search.

Two parts, each writing its section of one JSON (resumable: finished exports are kept):

* ``winners``: the best archs of the three headline searches (configs/vpu.yaml, cpu.yaml,
  gpu.yaml; each search resumes its study) exported with `--precision int8` to ONNX (onnxruntime
  QDQ) and to OpenVINO IR (NNCF), after `--finetune-epochs` of stand-alone training (the search's
  quarter-width proxy supernet holds no full-width weights): FP32 and INT8 top-1 on the validation
  split side by side, as the export reports them.
* ``search``: at one budget, `quadnas search` on this host's FP32 table and on its INT8 table of
  the same backend (`quadnas profile [--precision int8]`, e.g. by `scripts/bench_int8.py`): which
  arch each picks, its predicted latency in both precisions, supernet accuracy, and the INT8
  accuracy of both winners exported as the INT8 deployment (same fine-tuning, same seed).

    python scripts/bench_int8_deploy.py winners
    python scripts/bench_int8_deploy.py search --backend openvino --budget 30
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from quadnas.cli.json_output import run_json
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures" / "bench_int8_deploy.json"
HEADLINES = ("vpu", "cpu", "gpu")
FORMATS = {"onnx": "m.onnx", "openvino": "m.xml"}


def int8_export(best_yaml: str, fmt: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Export a search's best arch as INT8 `fmt` after fine-tuning: its FP32 and INT8 accuracy."""
    out = folder / FORMATS[fmt]
    doc = run_json(
        "export", best_yaml, "--format", fmt, "--precision", "int8", "--finetune-epochs", f"{args.epochs:g}",
        "--seed", str(args.seed), "--out", str(out), cwd=ROOT,
    )  # fmt: skip
    check = doc["int8"]
    return {
        "fp32_accuracy": check["fp32_accuracy"],
        "int8_accuracy": check["int8_accuracy"],
        "drop": round(check["fp32_accuracy"] - check["int8_accuracy"], 4),
        "max_logit_diff": round(check["max_logit_diff"], 4),
        "on": check["on"],
        "runtime": doc["parity"]["runtime"],
    }


def run_winners(args: argparse.Namespace, result: dict[str, Any]) -> None:
    section = result.setdefault("winners", {})
    for name in HEADLINES:
        entry = section.setdefault(name, {})
        if "arch" not in entry:
            doc = run_json("search", "--config", str(ROOT / "configs" / f"{name}.yaml"), cwd=ROOT)
            entry.update(arch=doc["best"]["arch"], best_yaml=str(Path(doc["run_dir"]) / "best.yaml"))
        for fmt in FORMATS:
            if fmt not in entry:
                entry[fmt] = int8_export(entry["best_yaml"], fmt, args, args.work / "winners" / name / fmt)
                args.save()
                print(f"{name} {fmt}: {entry[fmt]}", flush=True)


def run_search(args: argparse.Namespace, result: dict[str, Any]) -> None:
    key = f"{args.backend} {args.budget:g} ms"
    section = result.setdefault("search", {}).setdefault(key, {})
    space = SearchSpace.load("quadranet-t")
    tables = {p: args.tables / f"quadranet-t-{args.backend}-1t-{p}.csv" for p in ("fp32", "int8")}
    predictors = {p: LatencyPredictor(LatencyTable.read(path), space) for p, path in tables.items()}
    for precision, table in tables.items():
        entry = section.setdefault(precision, {})
        if "arch" not in entry:
            study = f"int8cmp-{args.backend}-{args.budget:g}ms-{precision}"
            doc = run_json(
                "search", "--device", str(table), "--budget", f"{args.budget:g}ms", "--study", study, cwd=ROOT
            )
            entry.update(
                arch=doc["best"]["arch"],
                supernet_accuracy=doc["best"]["accuracy"],
                best_yaml=str(Path(doc["run_dir"]) / "best.yaml"),
            )
        arch = space.parse(entry["arch"])
        entry["predicted_ms"] = {p: round(predictor.predict(arch), 2) for p, predictor in predictors.items()}
        if "int8_deployment" not in entry:
            folder = args.work / "search" / key.replace(" ", "-") / precision
            entry["int8_deployment"] = int8_export(entry["best_yaml"], args.backend, args, folder)
            args.save()
        print(f"{key}, {precision} table: {entry}", flush=True)
    section["same_arch"] = section["fp32"]["arch"] == section["int8"]["arch"]
    section["int8_accuracy_gain"] = round(
        section["int8"]["int8_deployment"]["int8_accuracy"] - section["fp32"]["int8_deployment"]["int8_accuracy"], 4
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("winners", "search"))
    parser.add_argument("--epochs", type=float, default=4.0, help="fine-tuning epochs before each export")
    parser.add_argument("--seed", type=int, default=0, help="fine-tuning seed")
    parser.add_argument("--backend", default="openvino", help="search: onnxruntime or openvino")
    parser.add_argument("--budget", type=float, default=30.0, help="search: budget in ms")
    parser.add_argument(
        "--tables", type=Path, default=ROOT / "runs" / "bench-int8", help="search: where the tables are"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-int8-deploy", help="exported files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["recipe"] = {"finetune_epochs": args.epochs, "seed": args.seed}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    args.save = save
    {"winners": run_winners, "search": run_search}[args.part](args, result)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
