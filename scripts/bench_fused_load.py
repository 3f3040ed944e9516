"""Time a fresh process takes to load the already-built fused op: this tree against another commit's.

Each run is a new `python` process that imports torch and `quadnas.nn.fused` and times
`fused.extension()` alone (the build is finished: a warm-up run of each tree builds it first, untimed).
The other commit's `quadnas/` comes from `git archive` into a temporary folder and is imported
through PYTHONPATH; runs of the two trees interleave, so both see the same machine.

    python scripts/bench_fused_load.py --ref main     # writes docs/figures/bench_fused_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import time, torch\n"
    "from quadnas.nn import fused\n"
    "began = time.perf_counter()\n"
    "assert fused.extension() is not None\n"
    "print(time.perf_counter() - began)\n"
)


def load_seconds(tree: Path) -> float:
    """Seconds `fused.extension()` takes in a fresh process importing quadnas from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def commit(ref: str) -> str:
    """The commit `ref` names (this tree: HEAD, which may have uncommitted changes)."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True)
    return done.stdout.strip()


def unpack(ref: str, where: Path) -> Path:
    """`ref`'s `quadnas/` package under `where`."""
    archive = where / "ref.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "quadnas"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(where / "ref", filter="data")
    return where / "ref"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="a commit to compare with, side by side")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/bench_fused_load.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        trees = {"this tree": ROOT, **({args.ref: unpack(args.ref, Path(scratch))} if args.ref else {})}
        load_at_start = os.getloadavg()
        for tree in trees.values():
            load_seconds(tree)  # builds where needed
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.runs):
            for name, tree in trees.items():
                times[name].append(load_seconds(tree))
    result = {
        "what": "seconds fused.extension() takes in a fresh process, the extension already built",
        "command": " ".join(["python", "scripts/bench_fused_load.py", *sys.argv[1:]]),
        "commits": {name: commit(args.ref if name == args.ref else "HEAD") for name in times},
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "note": "measured beside other jobs",
        },
        "torch_extensions_dir": os.environ.get("TORCH_EXTENSIONS_DIR", "(torch's default)"),
        "runs": times,
        "median_s": {name: statistics.median(values) for name, values in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["median_s"]))


if __name__ == "__main__":
    main()
