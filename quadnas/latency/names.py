"""What the command line shows before any command runs: the backend names and the user tables folder.

Light on purpose (no torch, pandas or numpy): `quadnas --help` and argument errors import it.
`backends.BACKENDS` and `devices` take these from here.
"""

from __future__ import annotations

import os
from pathlib import Path

BACKEND_NAMES = ("onnxruntime", "openvino", "torch", "litert")
TABLES_ENV = "QUADNAS_TABLES"


def user_tables_dir() -> Path:
    """Where user tables live: `$QUADNAS_TABLES`, else `~/.quadnas/latency_tables`."""
    override = os.environ.get(TABLES_ENV)
    return Path(override).expanduser() if override else Path.home() / ".quadnas" / "latency_tables"
