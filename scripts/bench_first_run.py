"""README's main command as a new user meets it: the first run (trains the cached supernet), the
second (the same command again) and a search with another budget on the cached supernet.

Each runs `quadnas search --device vpu --budget 30ms` (then `--budget 25ms`) as a subprocess in a
fresh folder, with stderr captured as a log (plain progress lines), and is timed wall-clock.
Writes the times, the phase times read from the progress lines, the top-10 accuracies of the
first run and the host to JSON. Run it on a quiet machine.

    python scripts/bench_first_run.py                   # writes docs/figures/bench_first_run.json
    python scripts/bench_first_run.py --train-width 0.5 --out docs/figures/bench_first_run_w05.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from quadnas.latency.host import Host

RUNS = (("first run", "30ms"), ("second run (same command)", "30ms"), ("cached supernet, another budget", "25ms"))


def timed_search(folder: Path, budget: str, extra: list[str]) -> dict:
    """One `quadnas search` (with `extra` arguments) in `folder`: wall seconds, the seconds its tasks
    reported, its output."""
    command = [sys.executable, "-m", "quadnas", "search", "--device", "vpu", "--budget", budget, *extra]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    tasks = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^(.+?): \d+/\d+ \w+ \(100%\), .*?, (.+?) in all", done.stderr, re.MULTILINE)
    }
    return {
        "command": " ".join(["quadnas", *command[3:]]),
        "wall_s": round(wall, 1),
        "tasks": tasks,
        "stderr_lines": len(done.stderr.splitlines()),
    }


def top_accuracies(folder: Path) -> list[float]:
    """Accuracies of the 10 best distinct feasible archs of the first run's study."""
    import pandas as pd

    trials = pd.read_csv(next(folder.glob("runs/*-30ms-*/trials.csv")))
    feasible = trials[trials["user_attrs_evaluated"] == True]  # noqa: E712 (a pandas mask)
    best = feasible.drop_duplicates("user_attrs_arch").sort_values("user_attrs_accuracy", ascending=False)
    return [float(a) for a in best["user_attrs_accuracy"].head(10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/bench_first_run.json"))
    parser.add_argument("--train-width", type=float, help="passed to every search (default: the search's own)")
    args = parser.parse_args()
    extra = ["--train-width", f"{args.train_width:g}"] if args.train_width else []
    host = Host.current()
    result: dict = {
        "host": host.model_dump(),
        "host_fingerprint": host.fingerprint,
        "load_average_at_start": os.getloadavg(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as folder:
        for label, budget in RUNS:
            run = timed_search(Path(folder), budget, extra)
            result["runs"].append({"run": label, **run})
            print(f"{label}: {run['wall_s']} s  {run['tasks']}", flush=True)
        accuracies = top_accuracies(Path(folder))
        best = yaml.safe_load(next(Path(folder).glob("runs/*-30ms-*/best.yaml")).read_text())
    result["first_run_top10_accuracies"] = accuracies
    result["first_run_top10_distinct_accuracies"] = len(set(accuracies))
    result["first_run_best"] = {"arch": best["arch"], "accuracy": best["accuracy"]}
    result["first_run_best"]["latency_ms"] = best["devices"][0]["latency_ms"]
    result["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("first_run_top10_accuracies", "first_run_best")}, indent=2))


if __name__ == "__main__":
    main()
