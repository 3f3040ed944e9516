"""Run the test suite while other processes keep every core busy: tests must hold on a loaded machine.

    python scripts/suite_under_load.py                 # one busy process per core, then `python -m pytest`
    python scripts/suite_under_load.py -- -x tests/test_search.py

Prints pytest's output, the load average and the wall time; exits with pytest's exit code.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time


def spin() -> None:
    """Busy-loop until killed."""
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes (default: one per core)")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in spinners:
        process.start()
    began = time.monotonic()
    try:
        code = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
    finally:
        load = os.getloadavg()
        for process in spinners:
            process.kill()
    print(
        f"suite under load: exit {code}, {time.monotonic() - began:.0f} s wall, {args.busy} busy processes, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
