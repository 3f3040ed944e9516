"""The portable measuring core as the one file a kit ships: what it holds, what it imports, and that it runs
where only numpy is installed (a kit timing its models: test_kit.py, test_litert.py, test_int8_tables.py)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import quadnas.portable
from quadnas.portable.bundle import PACKAGE, write_runner
from quadnas.portable.native_stderr import known_lines_dropped

SOURCE = Path(quadnas.portable.__file__).parent
# Besides the standard library: numpy, and py-cpuinfo where installed (the runtimes are imported by name,
# with importlib, when a session asks for one).
THIRD_PARTY = {"numpy", "cpuinfo"}


def imported_packages(source: str) -> set[str]:
    """The top-level packages `source` imports absolutely (relative imports stay inside the core)."""
    found = set()
    for node in ast.walk(ast.parse(source, feature_version=(3, 9))):  # a device may have an older Python
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_runner_is_the_whole_core_importing_only_the_standard_library_and_numpy(tmp_path):
    runner = write_runner(tmp_path / "run.py")
    with zipfile.ZipFile(runner) as archive:
        names = sorted(name for name in archive.namelist() if not name.endswith("/"))
        sources = {name: archive.read(name).decode() for name in names}
    modules = sorted(f"{PACKAGE}/{path.name}" for path in SOURCE.glob("*.py"))
    assert names == sorted(["__main__.py", *modules])
    packages = set().union(*(imported_packages(text) for text in sources.values()))
    assert packages - set(sys.stdlib_module_names) == {PACKAGE, *THIRD_PARTY}  # PACKAGE: the __main__


def test_the_runner_runs_with_only_numpy_and_says_what_is_wrong_in_one_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    numpy = Path(np.__file__).parent
    (site / numpy.name).symlink_to(numpy)
    if numpy.with_name("numpy.libs").is_dir():  # manylinux wheels keep bundled libraries beside the package
        (site / "numpy.libs").symlink_to(numpy.with_name("numpy.libs"))
    runner = write_runner(tmp_path / "kit" / "run.py")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # -S: no site-packages, so only numpy is importable besides the runner
            [sys.executable, "-S", str(runner), *args],
            env={**os.environ, "PYTHONPATH": str(site)},
            capture_output=True,
            text=True,
            timeout=120,
        )

    shown = run("--help")
    assert shown.returncode == 0 and "--backend {onnxruntime,openvino,litert}" in shown.stdout
    refused = run("--backend", "onnxruntime")  # no manifest.json beside it
    assert refused.returncode == 2 and refused.stderr.startswith("error: cannot read the kit's manifest.json")
    assert len(refused.stderr.splitlines()) == 1


def test_known_native_lines_are_dropped_and_the_rest_passed_on(capfd):
    """Lines written straight to descriptor 2 (as C++ libraries write) are held back; the ones no pattern matches
    reach stderr after the block, also when it raises."""
    noise = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
    with known_lines_dropped():
        os.write(2, noise + b"E0000 something the user must see\n")
    assert capfd.readouterr().err == "E0000 something the user must see\n"
    with pytest.raises(RuntimeError), known_lines_dropped():
        os.write(2, b"the native reason it failed\n" + noise)
        raise RuntimeError("failed")
    assert capfd.readouterr().err == "the native reason it failed\n"
