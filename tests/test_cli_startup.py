"""Start-up: `quadnas --help`, `--version` and argument errors import no heavy library.

Each check runs in a fresh interpreter and looks at what it imported, not at how long it took,
so it holds on a slow or busy machine. The heavy modules are imported by the commands that run.
"""

from __future__ import annotations

import json
import subprocess
import sys

from quadnas.cli import build_parser

HEAVY = ("torch", "pandas", "scipy", "onnx", "onnxruntime", "openvino", "optuna", "sklearn", "matplotlib")
# numpy too, except where argparse reads the clock names of the kit runner (a standalone numpy script):
# a subcommand's own help, or a wrong --clock.
HEAVY_WITH_NUMPY = ("numpy", *HEAVY)

# In a fresh interpreter: build the parser, run `main` on each argv (output swallowed), print the exit
# codes and the heavy modules then imported, as JSON.
PROBE = """
import contextlib, io, json, sys
from quadnas.cli import build_parser, main
build_parser()
codes = []
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as e:
            codes.append(e.code)
print(json.dumps({"codes": codes, "heavy": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)}))
"""


def probe(argvs: list[list[str]], heavy: tuple[str, ...]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argvs), json.dumps(heavy)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_help_version_and_argument_errors_import_nothing_heavy():
    cases = {
        ("--version",): 0,
        ("--help",): 0,
        (): 2,  # no command
        ("nosuchcommand",): 2,
        ("search", "--trials", "0"): 2,
        ("search", "--help"): 0,
        ("train", "--epochs", "0"): 2,
        ("train", "--help"): 0,
        ("export",): 2,
        ("export", "best.yaml", "--out", "m.onnx", "--backend", "nosuch"): 2,
        ("export", "--help"): 0,
        ("predict",): 2,
        ("predict", "--help"): 0,
        ("tables", "--nosuch"): 2,
        ("tables", "--help"): 0,
        ("profile", "--rounds", "0"): 2,
        ("profile", "--round-ms", "-1"): 2,
        ("profile", "kit"): 2,
        ("profile", "import"): 2,
        ("validate", "--table", "t", "--n", "0"): 2,
        ("validate",): 2,
        ("cache", "nosuch"): 2,
        ("cache", "--help"): 0,
    }
    found = probe([list(argv) for argv in cases], HEAVY_WITH_NUMPY)
    assert dict(zip(cases, found["codes"])) == cases
    assert found["heavy"] == []


def test_clock_choices_import_no_heavy_library_numpy_included():
    found = probe(
        [
            ["profile", "--help"],
            ["validate", "--help"],
            ["profile", "--clock", "nosuch"],
            ["validate", "--table", "t", "--clock", "nosuch"],
        ],
        HEAVY_WITH_NUMPY,
    )
    assert found == {"codes": [0, 0, 2, 2], "heavy": []}


def test_clock_and_backend_choices_come_from_their_one_definition(capsys):
    from quadnas.latency.measure.backends import BACKENDS
    from quadnas.latency.names import BACKEND_NAMES
    from quadnas.portable import CLOCK_CHOICES

    assert tuple(BACKENDS) == BACKEND_NAMES and all(BACKENDS[name].name == name for name in BACKEND_NAMES)
    parser = build_parser()
    for clock in CLOCK_CHOICES:
        assert parser.parse_args(["profile", "--clock", clock]).clock == clock
        assert parser.parse_args(["validate", "--table", "t", "--clock", clock]).clock == clock
    for backend in BACKEND_NAMES:
        assert parser.parse_args(["export", "x", "--out", "m.onnx", "--backend", backend]).backend == backend
    try:
        parser.parse_args(["profile", "--clock", "nosuch"])
    except SystemExit as e:
        assert e.code == 2
    assert f"choose from {', '.join(map(repr, CLOCK_CHOICES))}" in capsys.readouterr().err


def test_module_argument_error_is_one_line_exit_2_without_heavy_imports(tmp_path):
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "quadnas", "search", "--trials", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    imported = {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}
    assert sorted({name.split(".")[0] for name in imported} & set(HEAVY_WITH_NUMPY)) == []
    shown = [line for line in lines if not line.startswith("import time:")]
    errors = [line for line in shown if "error" in line]
    assert errors == ["quadnas search: error: argument --trials: 0 must be at least 1"] == shown[-1:]
    assert list(tmp_path.iterdir()) == []  # an argument error writes nothing
