"""A validation's error split into the table's level and its shape, and the prediction against the second pass.

A table predicts every network through one calibration, so a machine that ran the whole profile slower or
faster than the validation (a shared VM that changes speed for minutes at a time) shows as every network
off by one factor: the level. What is left after dividing that factor out is the table's shape. `validate`
times the networks twice; the prediction against the second pass says whether the first pass met a slow
spell the second did not.

Reads `quadnas validate --json` files, or `scripts/bench_threads.py` JSON (every case's validation):

    python scripts/validation_level.py docs/figures/litert/validate_quiet2.json \
        docs/figures/litert/validate_requiet.json docs/figures/threads_interleaved/bench_threads.json \
        --out docs/figures/validation_level.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.latency.measure._validate import compare


def validations(path: Path) -> dict[str, dict[str, Any]]:
    """The validations a file holds, by name: a `validate --json` file's one, or each bench_threads case's."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read it as JSON ({type(e).__name__}): pass a validate --json file") from None
    if "cases" in doc:
        return {f"{path.name} {name}": case["validate"] for name, case in doc["cases"].items() if "validate" in case}
    if "predicted_ms" in doc and "measured_ms" in doc:
        return {path.name: doc}
    raise SystemExit(f"{path}: neither a validate --json file nor bench_threads JSON: pass one of those")


def level_and_shape(v: dict[str, Any]) -> dict[str, Any]:
    """The prediction over the measurement (its median: the level), the error left after dividing the level
    out (the shape), and, where the networks were timed twice, the second pass against the first and the
    prediction against the second pass."""
    measured, predicted = np.asarray(v["measured_ms"]), np.asarray(v["predicted_ms"])
    ratio = predicted / measured
    level = float(np.median(ratio))
    shape = np.abs(ratio / level - 1) * 100
    found: dict[str, Any] = {
        "networks": len(ratio),
        "level": round(level, 4),
        "ratio_min": round(float(ratio.min()), 4),
        "ratio_max": round(float(ratio.max()), 4),
        "shape_max_err_pct": round(float(shape.max()), 2),
        "shape_within_5_pct": round(float((shape <= 5).mean() * 100), 1),
    }
    if v.get("repeat_ms"):
        repeat = np.asarray(v["repeat_ms"])
        second = repeat / measured
        found["second_over_first_min"] = round(float(second.min()), 4)
        found["second_over_first_max"] = round(float(second.max()), 4)
        found["first_slower_by_5_pct"] = int((second < 0.95).sum())
        found["against_second_pass"] = {k: round(x, 4) for k, x in compare(repeat, predicted).items()}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+", help="validate --json files or bench_threads JSON")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    found = {name: level_and_shape(v) for path in args.files for name, v in validations(path).items()}
    for name, f in found.items():
        print(f"{name}: {json.dumps(f)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(found, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
