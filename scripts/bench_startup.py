"""Start-up time of the command line: `quadnas --help`, `--version` and an argument error, best of N runs.

With `--ref COMMIT` the same commands also run from that commit's tree (a temporary git worktree,
imported through PYTHONPATH), interleaved with this tree's runs, so both see the same machine.

    python scripts/bench_startup.py --ref 0883e22       # writes docs/figures/bench_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["--version"], ["search", "--trials", "0"])


def seconds(tree: Path, argv: list[str]) -> float:
    """Wall seconds of `python -m quadnas ARGV` importing quadnas from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quadnas", *argv],
        cwd=tempfile.gettempdir(),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help="a commit to compare with, side by side")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/bench_startup.json")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        if args.ref:
            worktree = Path(scratch) / "ref"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.ref],
                check=True,
                capture_output=True,
            )
            trees[args.ref] = worktree
        try:
            times: dict[str, dict[str, list[float]]] = {t: {" ".join(c): [] for c in COMMANDS} for t in trees}
            for _ in range(args.runs):
                for command in COMMANDS:
                    for name, tree in trees.items():
                        times[name][" ".join(command)].append(seconds(tree, command))
        finally:
            if args.ref:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)
    result = {
        "runs": args.runs,
        "load_average": os.getloadavg(),
        "best_s": {t: {c: round(min(v), 3) for c, v in cs.items()} for t, cs in times.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
