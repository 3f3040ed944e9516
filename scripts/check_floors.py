"""Check that pyproject.toml's dependency floors hold: install every direct dependency at its floor, then smoke-test.

One command, run by hand (not in CI: it takes minutes and downloads a few GB):

    python3 scripts/check_floors.py [--torch VERSION] [--ref REF] [--out docs/figures/floors.json]

In a fresh temporary venv it installs quadnas[openvino,postgres] with each direct dependency pinned `==floor`
(a pip constraints file: the same as a lowest-direct resolution, everything else at its newest compatible
release), wheels only, through pip and so through this machine's pip configuration (indexes, find-links).
Then: `pip check`, one import per dependency, and a smoke test on the tiny space: `quadnas profile` of a
latency table, `quadnas search` (3 trials, 1 epoch), `quadnas export` of its best.yaml to ONNX and to OpenVINO.
The first failure stops the run with one line naming the step and the package; the JSON records it either way.
`--torch` replaces torch's floor (e.g. a CPU wheel on disk) and the output says so.
Python rather than shell because it reads pyproject.toml (tomllib: run it with Python >= 3.11) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("openvino", "postgres")
MODULES = {"pyyaml": "yaml", "scikit-learn": "sklearn", "pillow": "PIL"}  # distribution -> import name
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


class StepFailed(Exception):
    """A step of the check failed; the message is the one line to print."""


def floors(pyproject: Path) -> dict[str, str]:
    """Each direct dependency (and those of EXTRAS) -> its `>=` floor, read from `pyproject`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"]) + [r for e in EXTRAS for r in project["optional-dependencies"][e]]
    found: dict[str, str] = {}
    for line in lines:
        match = REQUIREMENT.match(line)
        assert match, f"unparsed requirement {line!r}"
        name, specs = match.group(1).lower(), match.group(2).split(",")
        lows = [s.strip()[2:].strip() for s in specs if s.strip().startswith(">=")]
        if not lows:
            raise SystemExit(f"check_floors: {name} has no >= floor in pyproject.toml")
        found[name] = lows[0]
    return found


def copy_source(dest: Path, ref: str | None) -> None:
    """Copy the checkout's tracked and unignored files as they are on disk, or the tree of git `ref`, to `dest`."""
    if ref:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True)
        if archive.returncode:
            raise SystemExit(f"check_floors: git archive {ref} failed: {archive.stderr.decode().strip()}")
        dest.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def release(version: str) -> tuple[int, ...]:
    """The release numbers of `version` without trailing zeros: 2.0.0+cpu and 2 alike give (2,)."""
    match = re.match(r"\d+(\.\d+)*", version)
    numbers = [int(part) for part in match.group(0).split(".")] if match else []
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


def describe(ref: str | None) -> str:
    """Which source was checked: `ref`, or the working tree with its commit and the tracked files changed since."""
    git = ["git", "-C", str(ROOT)]
    log = ["log", "-1", "--format=%h %<(72,trunc)%s", ref or "HEAD"]
    head = subprocess.run([*git, *log], capture_output=True, text=True).stdout.strip()
    if ref:
        return f"{ref}: {head}"
    changed = subprocess.run([*git, "diff", "--name-only", "HEAD"], capture_output=True, text=True).stdout.split()
    return f"working tree on {head}" + (f"; changed: {', '.join(changed)}" if changed else "")


def host() -> dict[str, object]:
    """Python, OS, CPU model and core count of this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    return {
        "python": platform.python_version(),
        "system": platform.platform(),
        "cpu": model.group(1).strip() if model else platform.machine(),
        "cores": os.cpu_count(),
    }


def culprit(output: str, fallback: str) -> str:
    """The package of the last site-packages frame of a traceback in `output`, else `fallback`."""
    frames = re.findall(r"site-packages/([A-Za-z0-9_]+)", output)
    module = frames[-1] if frames else fallback
    return next((dist for dist, mod in MODULES.items() if mod == module), module.replace("_", "-"))


class Run:
    """Runs the steps in a work folder, timing each and recording them for the JSON."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.steps: list[dict[str, object]] = []

    def step(self, name: str, command: list[str], package: str | None = "quadnas") -> str:
        """Run `command` in the work folder as step `name`; raise StepFailed with one line when it fails."""
        print(f"check_floors: {name} ...", flush=True)
        start = time.monotonic()
        done = subprocess.run(command, cwd=self.work, capture_output=True, text=True)
        seconds = round(time.monotonic() - start, 1)
        output = done.stdout + done.stderr
        record: dict[str, object] = {"step": name, "ok": done.returncode == 0, "seconds": seconds}
        self.steps.append(record)
        if done.returncode == 0:
            return done.stdout
        (self.work / f"{name}.log").write_text(output)
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        pip_errors = [line for line in lines if line.startswith("ERROR:")]  # pip's first one names the package
        raised = [line for line in lines if re.match(r"^(\w+(Error|Exception)|error):", line)]
        record["error"] = (pip_errors[:1] or raised[-1:] or lines[-1:] or [f"exit status {done.returncode}"])[0]
        if "The conflict is caused by:" in lines:  # pip's resolver: the requirements that clash
            after = lines[lines.index("The conflict is caused by:") + 1 :]
            cause = [line for line in after[:6] if re.search(r"depends on|requested", line)]
            record["error"] = f"{record['error']} Caused by: {'; '.join(cause)}"
        who = f" ({culprit(output, package)})" if package else ""
        raise StepFailed(f"{name} failed{who}: {record['error']} [log: {self.work / name}.log]")


def check(work: Path, pins: dict[str, str], result: dict[str, object], installed: dict[str, str | None]) -> None:
    """Install quadnas from `work`/src with every direct dependency at `pins` in a venv under `work`; smoke-test it.

    Fills `installed` (each pinned package -> the version installed) and `result` (steps, other packages).
    """
    run = Run(work)
    result["steps"], result["installed"] = run.steps, installed
    constraints = work / "floors.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    run.step("venv", [sys.executable, "-m", "venv", str(work / "venv")])
    py, quadnas = str(work / "venv/bin/python"), str(work / "venv/bin/quadnas")
    pip = [py, "-m", "pip", "install", "--only-binary", ":all:", "--no-binary", "quadnas", "-c", str(constraints)]
    run.step("install", [*pip, f"{work / 'src'}[{','.join(EXTRAS)}]"], package=None)
    listed = json.loads(run.step("pip-list", [py, "-m", "pip", "list", "--format", "json"]))
    versions = {row["name"].lower().replace("_", "-"): row["version"] for row in listed}
    installed |= {name: versions.get(name) for name in pins}
    result["other_packages"] = {k: v for k, v in sorted(versions.items()) if k not in pins}
    missed = [
        f"{n} {versions.get(n)} (floor {v})" for n, v in pins.items() if release(versions.get(n) or "") != release(v)
    ]
    if missed:
        raise StepFailed(f"install did not reach the floors: {', '.join(missed)}")
    run.step("pip-check", [py, "-m", "pip", "check"], package=None)
    reported: dict[str, str] = {}  # what each module says of itself, e.g. torch's build: 2.4.0+cu121
    result["imported"] = reported
    for name in pins:
        module = MODULES.get(name, name.replace("-", "_"))
        code = f"import {module}; print(getattr({module}, '__version__', ''))"
        reported[name] = run.step(f"import-{name}", [py, "-c", code], package=name).strip()
    table = ["--space", "tiny", "--rounds", "1", "--round-ms", "1", "--calibration-nets", "2", "--network-rounds", "1"]
    run.step("profile-tiny", [quadnas, "profile", *table, "--out", "tiny.csv"])
    search = ["--space", "tiny", "--device", "tiny.csv", "--budget", "1s", "--data", "digits", "--seed", "0"]
    run.step("search", [quadnas, "search", *search, "--trials", "3", "--train-epochs", "1", "--runs-dir", "runs"])
    best = next((str(path) for path in (work / "runs").glob("*/best.yaml")), None)
    if best is None:
        raise StepFailed("search failed (quadnas): it wrote no best.yaml")
    for fmt, out in (("onnx", "model.onnx"), ("openvino", "model.xml")):
        run.step(f"export-{fmt}", [quadnas, "export", best, "--finetune-epochs", "1", "--format", fmt, "--out", out])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", help="torch version to install instead of its floor (say why in the docs)")
    parser.add_argument("--ref", help="check this git commit instead of the working tree as it is on disk")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/floors.json", help="JSON record")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (venv, logs, outputs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quadnas-floors-"))
    try:
        copy_source(work / "src", args.ref)
    except SystemExit:
        shutil.rmtree(work)
        raise
    declared = floors(work / "src/pyproject.toml")
    pins = declared | ({"torch": args.torch} if args.torch else {})
    if args.torch:
        print(f"check_floors: torch {args.torch} instead of its floor {declared['torch']} (--torch)", flush=True)
    result: dict[str, object] = {
        "command": " ".join(["python3", "scripts/check_floors.py", *sys.argv[1:]]),
        "source": describe(args.ref),
        "host": host(),
        "floors": declared,
        "torch_override": args.torch,
    }
    start, failure, installed = time.monotonic(), None, dict[str, str | None]()
    try:
        check(work, pins, result, installed)
    except StepFailed as e:
        failure = str(e)
    result |= {"passed": failure is None, "failure": failure, "seconds": round(time.monotonic() - start, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.keep or failure:
        print(f"check_floors: work folder kept: {work}")
    else:
        shutil.rmtree(work)
    torch_used = installed.get("torch") or f"{pins['torch']} (not installed)"
    print(f"check_floors: torch used: {torch_used}; record: {args.out}")
    if failure:
        print(f"check_floors: FAIL {failure}", file=sys.stderr)
        return 1
    print(f"check_floors: PASS, every floor held in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
