"""Run one `quadnas` command from the evidence scripts and read its `--json` document."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def quadnas_json(*argv: str) -> dict[str, Any]:
    """The `--json` document of `quadnas -q ARGV --json`, run from the repository root.

    A command that leaves no document (an error, exit 2, or an export that failed its check) stops
    the script with the command's last line of stderr.
    """
    command = [sys.executable, "-m", "quadnas", "-q", *argv, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if not done.stdout.strip():
        last = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise SystemExit(f"quadnas {' '.join(argv[:2])} failed: {last[0]}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document
