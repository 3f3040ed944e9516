"""A kit's command line: measure every model of the kit that its results file lacks.

In a kit (next to manifest.json and the model files), this package ships as `run.py`, a zipapp
(`bundle.write_runner`):

    python run.py [--backend onnxruntime|openvino|litert] [--device CPU] [--threads 1]

(an INT8 kit's models are quantized for one runtime, and a LiteRT kit's are .tflite files: that runtime
is then the default and the only choice) writes results.csv next to itself, with this machine's identity
(`host.read_host`) in its header; rerun after an interruption to measure only what is missing. Bring
results.csv back and run `quadnas profile import results.csv`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .arguments import positive_int
from .clocks import CLOCK_CHOICES, check_clock
from .errors import KitError
from .host import host_fingerprint, read_host
from .results import ResultsFile
from .sessions import (
    KIT_BACKENDS,
    LITERT_DELEGATE,
    ONNX_BACKENDS,
    SESSIONS,
    check_target,
    device_name,
    import_runtime,
    runtime_config,
    runtime_version,
)
from .timing import TimedSession, Timing, measure_interleaved, network_schedule, op_schedule


def _default_backend() -> str:
    """The first installed runtime of ONNX files (a LiteRT kit names its runtime in its manifest)."""
    for backend in ONNX_BACKENDS:
        if importlib.util.find_spec(backend) is not None:
            return backend
    return ONNX_BACKENDS[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure this kit's models on this device.")
    parser.add_argument(
        "--backend",
        choices=KIT_BACKENDS,
        default=None,
        help="the runtime (default: a LiteRT or INT8 kit's own, else the first installed)",
    )
    parser.add_argument(
        "--device",
        "--target",
        dest="target",
        default=None,
        help="OpenVINO device (CPU, GPU, NPU, MYRIAD), onnxruntime provider (CPU, CUDA) or CPU for LiteRT",
    )
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument(
        "--clock",
        choices=CLOCK_CHOICES,
        default="auto",
        help="wall: elapsed time; cpu: the process's CPU time, the same for 1 thread on an idle CPU "
        "but steady on a busy one; auto (default): cpu for 1 thread on a CPU, else wall",
    )
    parser.add_argument("--rounds", type=positive_int, default=None, help="rounds per op (kit default)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default: results.csv in the kit)")
    return parser.parse_args(argv)


def kit_backend(manifest: Mapping[str, Any], backend: str | None) -> str:
    """The runtime to time the kit's models with: `backend`, else the runtime an INT8 kit was quantized
    for, else the first installed; an INT8 kit on another runtime is a KitError."""
    quantized_for = manifest.get("quantized_for")
    if quantized_for and backend not in (None, quantized_for):
        raise KitError(
            f"this kit's models are INT8 graphs quantized for {quantized_for}: run it with --backend {quantized_for}"
        )
    runtime = manifest.get("runtime")  # a kit of .tflite files runs on LiteRT only
    if runtime and backend not in (None, runtime):
        raise KitError(f"this kit's models are {runtime} files: run it with --backend {runtime}")
    if not runtime and backend == "litert":
        raise KitError("this kit's models are ONNX files: run it with --backend onnxruntime or openvino")
    return backend or quantized_for or runtime or _default_backend()


def results_header(
    manifest: Mapping[str, Any], backend: str, target: str | None, threads: int, clock: str
) -> dict[str, str]:
    """The header lines of a results file: the kit, how its models run, and this machine."""
    host = read_host()
    return {
        "space": manifest["space"],
        "fingerprint": manifest["fingerprint"],
        "backend": backend,
        "backend_version": runtime_version(backend),
        "target": (target or "CPU").upper(),
        "threads": str(threads),
        "clock": clock,
        "device": device_name(backend, target),
        **({"delegate": LITERT_DELEGATE} if backend == "litert" else {}),
        "runtime_config": json.dumps(runtime_config(backend, threads), sort_keys=True),
        "kit_precision": manifest.get("precision", "fp32"),  # of the kit's files: a kit rewritten in place differs
        **({"precision": "int8"} if manifest.get("precision") == "int8" else {}),  # a float one: the runtime's
        "python": platform.python_version(),
        "host": json.dumps(host),
        "host_fingerprint": host_fingerprint(host),
    }


def run_kit(
    kit: Path,
    backend: str | None,
    target: str | None,
    threads: int,
    out: Path | None = None,
    rounds: int | None = None,
    clock: str = "auto",
    log: Callable[[str], None] = print,
) -> Path:
    """Measure every model of the kit in `kit` that `out` lacks; the results file."""
    try:
        manifest = json.loads((kit / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise KitError(f"cannot read the kit's manifest.json ({e}): run run.py from inside its kit") from None
    settings = manifest["settings"]
    backend = kit_backend(manifest, backend)
    import_runtime(backend)
    clock = check_clock(clock, threads, target)
    check_target(backend, target)
    results = ResultsFile(out or kit / "results.csv", results_header(manifest, backend, target, threads, clock))
    session_class = SESSIONS[backend]
    files = {("overhead", "overhead"): manifest["overhead"]["file"]}
    files.update({("op", op["key"]): op["file"] for op in manifest["ops"]})
    files.update({("network", net["key"]): net["file"] for net in manifest["networks"]})
    ops = op_schedule({**settings, "rounds": rounds or settings["rounds"]})
    results.header.setdefault("rounds", str(ops.rounds))
    # A profiling kit times its calibration networks round for round with the ops (as `quadnas profile` does),
    # so a change of the device's speed while it runs shifts both sides of the calibration alike; an adaptation
    # kit has networks only.
    if manifest["ops"]:
        phases = [(("overhead",), ops), (("op", "network"), ops)]
    else:
        phases = [(("overhead",), ops), (("network",), network_schedule(settings, len(manifest["networks"])))]
    for kinds, schedule in phases:
        todo = {key: k for (k, key) in files if k in kinds and not results.has(k, key)}

        def open_session(key: str, todo: dict[str, str] = todo) -> TimedSession:
            session = session_class(kit / files[(todo[key], key)], threads, target, clock)
            results.header.setdefault("precision", session.precision)
            return session

        def done(key: str, timing: Timing, todo: dict[str, str] = todo) -> None:
            results.add(todo[key], key, timing)
            log(
                f"[{len(results.rows)}/{len(files)}] {todo[key]} {key}: {timing.median_ms:.3f} ms "
                f"(p10 {timing.p10_ms:.3f}, p90 {timing.p90_ms:.3f}, {timing.runs} runs)"
            )

        # one model (the overhead) reports its line as soon as its short rounds end: no round lines for it
        each_round = round_logger(len(todo) * schedule.rounds, " and ".join(kinds), log) if len(todo) > 1 else None
        measure_interleaved(list(todo), open_session, schedule, done, seed=settings["seed"], on_round=each_round)
    return results.path


def round_logger(total: int, what: str, log: Callable[[str], None]) -> Callable[[str], None]:
    """A callback for each timed round that logs a line every tenth of `total`: every model is open at once,
    so results come only at the end."""
    timed = 0

    def round_done(key: str) -> None:
        nonlocal timed
        timed += 1
        if timed % max(1, total // 10) == 0:
            log(f"{what} rounds: {timed}/{total}")

    return round_done


def main(argv: list[str] | None = None) -> int:
    """The kit's command line, for the kit around the file Python runs (the kit's run.py)."""
    args = parse_args(argv)
    kit = Path(sys.argv[0]).resolve().parent
    try:
        path = run_kit(kit, args.backend, args.target, args.threads, args.out, args.rounds, args.clock)
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: measured rows are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"done: {path} (bring it back and run: quadnas profile import {path.name})")
    return 0
