"""This package as one file: the zipapp a kit ships as `run.py`, which Python runs as it runs a script."""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path
from typing import BinaryIO

from .files import atomic_save

# The package's name inside the zipapp: a quadnas installed on the device cannot stand in for it.
PACKAGE = "quadnas_portable"
MAIN = f"import sys\n\nfrom {PACKAGE}.run import main\n\nsys.exit(main())\n"


def write_runner(path: Path) -> Path:
    """Write this package as a zipapp at `path` (atomically), its `__main__` the kit's command line; `path`."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(Path(__file__).parent, source / PACKAGE, ignore=ignore)
        (source / "__main__.py").write_text(MAIN, encoding="utf-8")

        def write(f: BinaryIO) -> None:
            zipapp.create_archive(source, f, interpreter="/usr/bin/env python3")

        atomic_save(path, write)
    return path
