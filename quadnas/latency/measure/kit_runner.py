"""Latency measurement core, and the runner shipped in profiling kits as `run.py`.

Self-contained on purpose: it needs only numpy plus onnxruntime, openvino or ai-edge-litert
(LiteRT's interpreter), so it runs on a device that has no quadnas. `quadnas profile` imports the
same sessions and the same timing loop, so a kit measures exactly as the profiler does.

In a kit (next to manifest.json and the ONNX files):

    python run.py [--backend onnxruntime|openvino|litert] [--device CPU] [--threads 1]

(an INT8 kit's models are quantized for one runtime, and a LiteRT kit's are .tflite files: that
runtime is then the default and the only choice) writes results.csv next to itself, with this
machine's identity (`read_host`: CPU, ISA features, cores) in its header; rerun after an
interruption to measure only what is missing. Bring results.csv back and run `quadnas profile import results.csv`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

RESULT_COLUMNS = ("kind", "key", "median_ms", "p10_ms", "p90_ms", "runs")
ONNX_BACKENDS = ("onnxruntime", "openvino")
KIT_BACKENDS = (*ONNX_BACKENDS, "litert")
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}
PIP_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai-edge-litert"}
# 'wall' is latency; 'cpu' (the process's CPU time) equals it for one thread on a CPU and
# ignores the time other programs take the core away, so it is steady on a busy machine.
# 'auto' picks cpu where it equals latency (1 thread on a CPU target), else wall.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK_CHOICES = ("auto", *CLOCKS)
NETWORK_WINDOW = 12  # whole networks timed interleaved at a time (~100 MB each at 224 px)


class KitError(Exception):
    """A problem the user can fix (bad device, missing package); one line."""


class TimedSession(Protocol):
    """A prepared model that can be called repeatedly and timed."""

    def time(self, n: int) -> list[float]:
        """Call the model `n` times back to back; the seconds each call took."""
        ...


# ---- the machine ----------------------------------------------------------
#: ISA features that decide which kernels a runtime picks, named as Linux's /proc/cpuinfo names them.
KERNEL_FEATURES = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx_vnni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)
#: the host fields that decide speed: what a host fingerprint hashes (not the OS, not the host name)
HOST_SPEED_KEYS = ("name", "family", "model", "stepping", "features", "logical_cores")
ARM_IMPLEMENTERS = {
    "0x41": "ARM",
    "0x42": "Broadcom",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0xc0": "Ampere",
}
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}


def kernel_features(flags: Iterable[str]) -> list[str]:
    """The KERNEL_FEATURES among `flags` (any spelling: 'avx512vnni' is 'avx512_vnni'), in KERNEL_FEATURES order."""
    have = {flag.lower().replace("_", "") for flag in flags}
    return [f for f in KERNEL_FEATURES if f.replace("_", "") in have]


def parse_cpuinfo(text: str) -> dict[str, object]:
    """The host fields of a Linux /proc/cpuinfo (x86 or Arm layout), from its first processor."""
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() not in first:
            first[key.strip().lower()] = value.strip()
    if "cpu implementer" in first:  # Arm: implementer, architecture, part, rNpM
        implementer, part = first["cpu implementer"].lower(), first.get("cpu part", "").lower()
        vendor = ARM_IMPLEMENTERS.get(implementer, implementer)
        variant, revision = first.get("cpu variant", ""), first.get("cpu revision", "")
        stepping = f"r{int(variant, 16)}p{revision}" if variant.startswith("0x") and revision.isdigit() else None
        part_name = f"{vendor} {ARM_PARTS[part]}" if implementer == "0x41" and part in ARM_PARTS else None
        return {
            "name": part_name or _first_name(first),
            "vendor": vendor,
            "family": first.get("cpu architecture"),
            "model": part or None,
            "stepping": stepping,
            "features": kernel_features(first.get("features", "").split()),
        }
    return {
        "name": _first_name(first),
        "vendor": first.get("vendor_id"),
        "family": first.get("cpu family"),
        "model": first.get("model"),
        "stepping": first.get("stepping"),
        "features": kernel_features(first.get("flags", "").split()),
    }


def _first_name(fields: dict[str, str]) -> str | None:
    for key in ("model name", "hardware", "processor"):
        name = fields.get(key, "")
        if name and not name.isdigit():
            return name
    return None


def _from_platform() -> dict[str, object]:
    """What the standard library knows (Windows: 'Intel64 Family 6 Model 85 Stepping 7, GenuineIntel')."""
    text = platform.processor()
    found = re.search(r"Family (\d+) Model (\d+) Stepping (\d+), (\w+)", text)
    fields: dict[str, object] = {"name": text or None}
    if found:
        fields.update(family=found[1], model=found[2], stepping=found[3], vendor=found[4])
    if platform.system() == "Darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
            fields["name"] = brand or fields["name"]
    return fields


def _from_cpuinfo_package() -> dict[str, object]:
    """What py-cpuinfo says, where it is installed (optional: macOS and Windows flags)."""
    try:
        import cpuinfo  # py-cpuinfo

        info = cpuinfo.get_cpu_info()
    except Exception:  # not installed, or it failed to probe this machine: the host has fewer fields
        return {}
    text = {key: str(info[key]) for key in ("family", "model", "stepping") if info.get(key) is not None}
    return {
        "name": info.get("brand_raw"),
        "vendor": info.get("vendor_id_raw"),
        **text,
        "features": kernel_features(info.get("flags") or []),
    }


def _machine() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def read_host(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, object]:
    """This machine's identity: CPU name, vendor, family/model/stepping, the KERNEL_FEATURES it has,
    logical cores, OS and machine. From /proc/cpuinfo on Linux, else the standard library and,
    where installed, py-cpuinfo; a field nothing reports is None."""
    try:
        fields = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
    except OSError:
        fields = {}
    if not fields.get("name") or not fields.get("features"):
        fields = {**_from_platform(), **_from_cpuinfo_package(), **{k: v for k, v in fields.items() if v}}
    machine = _machine()
    found = fields.get("features")
    features = set(found) if isinstance(found, list) else set()  # kernel_features' list, or none
    if machine == "aarch64":
        features.add("asimd")  # mandatory in 64-bit Arm, though macOS reports no flags
    return {
        "name": fields.get("name") or machine or "unknown CPU",
        "vendor": fields.get("vendor"),
        "family": fields.get("family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "features": kernel_features(features),
        "logical_cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}".strip() or None,
        "machine": machine or None,
    }


def host_fingerprint(host: Mapping[str, Any]) -> str:
    """12 hex digits of a hash of the HOST_SPEED_KEYS of a `read_host()` mapping."""
    speed = {key: sorted(host.get(key) or ()) if key == "features" else host.get(key) for key in HOST_SPEED_KEYS}
    return hashlib.sha256(json.dumps(speed, sort_keys=True).encode()).hexdigest()[:12]


def cpu_name() -> str:
    """This machine's CPU model, e.g. 'AMD EPYC 7763 64-Core Processor'."""
    return str(read_host()["name"])


def device_name(backend: str, target: str | None) -> str:
    """What runs the models: the CPU's model name, or the accelerator's full name."""
    if backend == "openvino" and (target or "CPU").upper() != "CPU":
        core = openvino_core()
        device = check_openvino_device(core, target or "CPU")
        try:
            return str(core.get_property(device, "FULL_DEVICE_NAME"))
        except Exception:  # virtual devices (AUTO, MULTI) have no single name
            return device
    if backend == "onnxruntime" and ort_provider(target) != "CPUExecutionProvider":
        return f"{ort_provider(target).removesuffix('ExecutionProvider')} on {cpu_name()}"
    return cpu_name()


def import_runtime(backend: str) -> ModuleType:
    """The runtime's Python module, or a KitError naming what to install."""
    package = RUNTIME_PACKAGES[backend]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise KitError(f"backend '{backend}' needs the {package} package: pip install {PIP_NAMES[backend]}") from None


def runtime_version(backend: str) -> str:
    module = import_runtime(backend)
    version = getattr(module, "__version__", None)
    if version is None and backend == "openvino":
        version = _openvino_api(module).get_version()
    return str(version).split("-")[0]


def random_input(shape: Iterable[int]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(tuple(shape), dtype=np.float32)


def timed_calls(run: Callable[[], object], n: int, clock: Callable[[], float]) -> list[float]:
    """Call `run` `n` times; the seconds each call took on `clock`."""
    times = []
    for _ in range(n):
        start = clock()
        run()
        times.append(clock() - start)
    return times


def check_clock(clock: str, threads: int, target: str | None) -> str:
    """The clock ('wall' or 'cpu') that `clock` means for this setup, or a KitError."""
    if clock not in CLOCK_CHOICES:
        raise KitError(f"unknown clock '{clock}': use one of {', '.join(CLOCK_CHOICES)}")
    cpu_ok = threads == 1 and (target or "CPU").upper() == "CPU"
    if clock == "cpu" and not cpu_ok:
        raise KitError("the cpu clock equals latency only with 1 thread on a CPU target: use the wall clock")
    if clock == "auto":  # some systems (Windows) count CPU time in 15 ms steps: too coarse for ops
        fine = time.get_clock_info("process_time").resolution <= 1e-6
        return "cpu" if cpu_ok and fine else "wall"
    return clock


def _static_shape(shape: Sequence[object], what: str) -> tuple[int, ...]:
    dims = tuple(d for d in shape if isinstance(d, int))
    if len(dims) != len(shape):
        raise KitError(f"{what} has a dynamic shape {shape}: export the model with a fixed input shape")
    return dims


# ---- onnxruntime ----------------------------------------------------------
def ort_provider(target: str | None) -> str:
    """The execution provider for `target` ('CPU', 'CUDA', or a full provider name)."""
    ort = import_runtime("onnxruntime")
    available: list[str] = ort.get_available_providers()
    wanted = (target or "CPU").strip()
    for provider in available:
        if wanted.lower() in (provider.lower(), provider.lower().removesuffix("executionprovider")):
            return provider
    short = ", ".join(p.removesuffix("ExecutionProvider") for p in available)
    raise KitError(f"onnxruntime has no execution provider '{wanted}' here: use one of {short}")


# With more than one thread, onnxruntime's intra-op pool spins between parallel sections and, by default, on
# after a call returns. The timing loop keeps several sessions open and alternates between them, so a call
# would share the cores with the still spinning pools of the sessions timed before it. The pool therefore
# stops spinning when a call returns: within a call it spins as a deployment's does, and a session runs
# alike whichever ran before it. Not spinning at all ends the interference too, but makes every op pay for
# waking the pool. Measurements: docs/tables.md, "Several threads".
ORT_POOL_ENTRIES = {"session.force_spinning_stop": "1"}


def ort_session_entries(threads: int) -> dict[str, str]:
    """The session config entries quadnas times onnxruntime with (none with one thread: there is no pool)."""
    return dict(ORT_POOL_ENTRIES) if threads > 1 else {}


def runtime_config(backend: str, threads: int) -> dict[str, str]:
    """Every runtime setting quadnas times `backend` with at `threads` threads, as a table's header records it
    (OpenVINO's: those it asks for; a device that lacks a property runs without it)."""
    if backend == "onnxruntime":
        return {
            "intra_op_num_threads": str(threads),
            "inter_op_num_threads": "1",
            "execution_mode": "sequential",
            **ort_session_entries(threads),
        }
    if backend == "openvino":
        return openvino_config(threads)
    return {"num_threads": str(threads), "delegate": LITERT_DELEGATE}


class OnnxRuntimeSession:
    """An onnxruntime session with fixed threads, sequential execution and bound buffers.

    `entries`: session config entries instead of `ort_session_entries(threads)` (to compare settings)."""

    def __init__(
        self,
        path: str | Path,
        threads: int = 1,
        target: str | None = None,
        clock: str = "wall",
        entries: Mapping[str, str] | None = None,
    ):
        ort = import_runtime("onnxruntime")
        self.clock = CLOCKS[clock]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        for key, value in (ort_session_entries(threads) if entries is None else entries).items():
            options.add_session_config_entry(key, value)
        self.session = ort.InferenceSession(str(path), options, providers=[ort_provider(target)])
        self.precision = "fp32"
        inp = self.session.get_inputs()[0]
        self._input = random_input(_static_shape(inp.shape, f"input of {path}"))
        self._outputs = []
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(inp.name, self._input)
        for out in self.session.get_outputs():
            if all(isinstance(d, int) for d in out.shape):
                buffer = np.empty(out.shape, dtype=np.float32)
                self._outputs.append(buffer)
                self._binding.bind_output(out.name, "cpu", 0, np.float32, buffer.shape, buffer.ctypes.data)
            else:
                self._binding.bind_output(out.name, "cpu")

    def time(self, n: int) -> list[float]:
        return timed_calls(lambda: self.session.run_with_iobinding(self._binding), n, self.clock)


# ---- openvino -------------------------------------------------------------
def _openvino_api(ov: ModuleType) -> ModuleType:
    """`openvino` (2023.1+) or `openvino.runtime` (2022.3 LTS, the last with MYRIAD)."""
    return ov if hasattr(ov, "Core") else importlib.import_module("openvino.runtime")


def openvino_core() -> Any:  # an openvino.Core (openvino has no type information)
    """The process's one OpenVINO Core (a KitError naming the install where openvino is missing)."""
    return _shared_core(_openvino_api(import_runtime("openvino")))


@functools.cache
def _shared_core(api: ModuleType) -> Any:
    """One Core per process. The CPU plugin of each Core installs a signal stack of its own on the thread that
    compiles and puts back the one it found when the Core goes; Cores that go in another order than they came
    leave the thread on an unmapped stack, and the next signal with a handler (Ctrl-C, SIGTERM) then kills
    the process with SIGSEGV. One Core for every session keeps the order."""
    return api.Core()


def check_openvino_device(core: Any, device: str) -> str:
    """`device` if this OpenVINO can run on it, else a KitError listing the available ones."""
    wanted = device.strip().upper()
    available = list(core.available_devices)
    families = {d.split(".")[0] for d in available}
    if wanted in available or wanted in families or wanted.split(":")[0] in ("AUTO", "MULTI", "HETERO"):
        return wanted
    if wanted.startswith("MYRIAD") and int(runtime_version("openvino").split(".")[0]) >= 2023:
        raise KitError(
            "OpenVINO removed the MYRIAD plugin in 2023.0: use openvino 2022.3 LTS "
            "(pip install 'openvino==2022.3.*') on the machine with the stick"
        )
    raise KitError(f"OpenVINO device '{device}' is not available here: use one of {', '.join(available)}")


def openvino_config(threads: int) -> dict[str, str]:
    """The properties quadnas compiles OpenVINO models with (a device that lacks one runs without it).

    With several threads the CPU plugin's default pins them to cores, which skews tables timed with several
    threads; they are timed unpinned (docs/tables.md, "Several threads", has the measurements)."""
    return {
        "INFERENCE_NUM_THREADS": str(threads),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_PRECISION_HINT": "f32",
        **({"ENABLE_CPU_PINNING": "NO"} if threads > 1 else {}),
    }


class OpenVinoSession:
    """A compiled OpenVINO model: fixed threads, latency hint, one stream, fp32 where supported.

    `config`: the properties to ask for instead of `openvino_config(threads)` (to compare settings)."""

    def __init__(
        self,
        path: str | Path,
        threads: int = 1,
        target: str | None = None,
        clock: str = "wall",
        config: Mapping[str, str] | None = None,
    ):
        api = _openvino_api(import_runtime("openvino"))
        self.clock = CLOCKS[clock]
        core = openvino_core()
        device = check_openvino_device(core, target or "CPU")
        supported = {str(p) for p in core.get_property(device.split(".")[0], "SUPPORTED_PROPERTIES")}
        wanted = openvino_config(threads) if config is None else config
        config = {k: v for k, v in wanted.items() if k in supported}
        model = core.read_model(str(path))
        self.compiled = core.compile_model(model, device, config)
        self.precision = self._precision()
        self.request = self.compiled.create_infer_request()
        shape = _static_shape([int(d) for d in model.inputs[0].get_partial_shape().to_shape()], str(path))
        self._input = random_input(shape)
        self.request.set_input_tensor(api.Tensor(self._input))
        try:
            self.request.infer(share_outputs=True)
            self._run = lambda: self.request.infer(share_outputs=True)
        except TypeError:  # OpenVINO before 2023.1
            self._run = self.request.infer

    def _precision(self) -> str:
        try:
            name: str = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception:  # devices without the property (MYRIAD, NPU) run fp16
            return "fp16"
        return {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(name, name)

    def time(self, n: int) -> list[float]:
        return timed_calls(self._run, n, self.clock)


# ---- LiteRT ---------------------------------------------------------------
LITERT_DELEGATE = "XNNPACK"  # the interpreter's default CPU delegate, which the sessions keep on


def check_litert_target(target: str | None) -> str:
    """'CPU' (LiteRT's interpreter with XNNPACK), else a KitError."""
    wanted = (target or "CPU").strip().upper()
    if wanted != "CPU":
        raise KitError(
            f"LiteRT target '{target}' is not supported by this runner: use CPU (the interpreter with XNNPACK); "
            "time GPU or NPU delegates with LiteRT's benchmark_model (the kit's android/ script)"
        )
    return wanted


class LiteRtSession:
    """A .tflite file in LiteRT's interpreter: fixed threads, the default delegate (XNNPACK) on, input set once.

    `precision` is int8 for a file with INT8 input (fully quantized), else fp32."""

    def __init__(self, path: str | Path, threads: int = 1, target: str | None = None, clock: str = "wall"):
        check_litert_target(target)
        interpreter_module = importlib.import_module(f"{import_runtime('litert').__name__}.interpreter")
        self.clock = CLOCKS[clock]
        self.interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        shape = _static_shape([int(d) for d in detail["shape"]], f"input of {path}")
        dtype = np.dtype(detail["dtype"])
        self.precision = "int8" if dtype == np.int8 else "fp32"
        if dtype.kind == "f":
            self._input = random_input(shape).astype(dtype)
        else:
            info = np.iinfo(dtype)
            self._input = np.random.default_rng(0).integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        self.interpreter.set_tensor(detail["index"], self._input)
        self.interpreter.invoke()

    def time(self, n: int) -> list[float]:
        return timed_calls(self.interpreter.invoke, n, self.clock)


if TYPE_CHECKING:  # a type only: the kit may run on a Python older than quadnas needs
    KitSession = OnnxRuntimeSession | OpenVinoSession | LiteRtSession
SESSIONS: dict[str, type[KitSession]] = {
    "onnxruntime": OnnxRuntimeSession,
    "openvino": OpenVinoSession,
    "litert": LiteRtSession,
}


# ---- timing ---------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Summary of per-call times: median and spread in milliseconds, number of calls."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        ms = np.asarray(seconds) * 1e3
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), len(ms))


@dataclass(frozen=True)
class Schedule:
    """How long and how often each model is timed.

    Every model is warmed up, then timed in `rounds` rounds; a round calls it back to
    back for at least `round_s` seconds (at least once). Up to `window` models are
    measured at a time, their rounds interleaved in shuffled order, so slow drift of a
    busy machine spreads over all of them instead of biasing one.
    """

    rounds: int = 20
    round_s: float = 0.04
    window: int = 6
    warmup_s: float = 0.05

    def calls_per_round(self, seconds_per_call: float) -> int:
        return max(1, math.ceil(self.round_s / max(seconds_per_call, 1e-7)))


def warm_up(session: TimedSession, schedule: Schedule) -> float:
    """Run the model for `warmup_s` (at least twice); its typical seconds per call."""
    times = session.time(2)
    while sum(times) < schedule.warmup_s:
        times += session.time(max(1, min(len(times), 1000)))
    return float(np.median(times[1:]))


def measure_interleaved(
    keys: list[str],
    open_session: Callable[[str], TimedSession],
    schedule: Schedule,
    on_done: Callable[[str, Timing], None],
    seed: int = 0,
) -> None:
    """Time every key's model; `on_done(key, timing)` as soon as each one is complete.

    A sliding window of `schedule.window` open models: each pass runs one round of
    every open model in shuffled order; a model that has its rounds is reported and
    closed, and the next key takes its place.
    """
    rng = random.Random(seed)
    pending = list(keys)
    rng.shuffle(pending)
    active: dict[str, tuple[TimedSession, int]] = {}
    samples: dict[str, list[list[float]]] = {}
    while pending or active:
        while pending and len(active) < schedule.window:
            key = pending.pop()
            session = open_session(key)
            active[key] = (session, schedule.calls_per_round(warm_up(session, schedule)))
            samples[key] = []
        order = list(active)
        rng.shuffle(order)
        for key in order:
            session, calls = active[key]
            samples[key].append(session.time(calls))
            if len(samples[key]) == schedule.rounds:
                del active[key]
                on_done(key, Timing.of([t for round_ in samples.pop(key) for t in round_]))


# ---- the results file -----------------------------------------------------
def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` so that a kill leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_header(text: str) -> dict[str, str]:
    """The `# key: value` lines at the top of a CSV."""
    header = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, _, value = line[1:].partition(":")
        header[key.strip()] = value.strip()
    return header


class ResultsFile:
    """results.csv: `# key: value` header, then one row per measured model; rewritten atomically."""

    IDENTITY_KEYS = ("fingerprint", "kit_precision", "backend", "target", "threads", "clock", "host_fingerprint")

    def __init__(self, path: Path, header: dict[str, str]):
        self.path, self.header = path, dict(header)
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        if path.exists():
            text = path.read_text()
            old = read_header(text)
            clash = [k for k in self.IDENTITY_KEYS if old.get(k) != self.header.get(k)]
            if clash:
                was = ", ".join(f"{k}={old.get(k)}" for k in clash)
                raise KitError(f"{path} was measured with {was}: delete it or rerun with those settings")
            self.header = {**old, **self.header}
            body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
            for row in csv.DictReader(io.StringIO(body)):
                self.rows[(row["kind"], row["key"])] = row

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self.rows

    def add(self, kind: str, key: str, timing: Timing) -> None:
        self.rows[(kind, key)] = {"kind": kind, "key": key, **{k: str(v) for k, v in asdict(timing).items()}}
        out = io.StringIO()
        out.writelines(f"# {k}: {v}\n" for k, v in self.header.items())
        writer = csv.DictWriter(out, RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows.values())
        atomic_write(self.path, out.getvalue())


# ---- the kit's command line -----------------------------------------------
def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the quadnas commands use this one too)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


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
    if backend == "openvino":
        check_openvino_device(openvino_core(), target or "CPU")
    elif backend == "litert":
        check_litert_target(target)
    else:
        ort_provider(target)
    host = read_host()
    header = {
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
    results = ResultsFile(out or kit / "results.csv", header)
    session_class = SESSIONS[backend]
    files = {("overhead", "overhead"): manifest["overhead"]["file"]}
    files.update({("op", op["key"]): op["file"] for op in manifest["ops"]})
    files.update({("network", net["key"]): net["file"] for net in manifest["networks"]})
    warmup_s = settings["warmup_ms"] / 1e3
    op_schedule = Schedule(
        rounds=rounds or settings["rounds"],
        round_s=settings["round_ms"] / 1e3,
        window=settings["window"],
        warmup_s=warmup_s,
    )
    net_schedule = Schedule(
        rounds=settings["network_rounds"],
        round_s=op_schedule.round_s,
        window=max(settings["window"], min(len(manifest["networks"]), NETWORK_WINDOW)),
        warmup_s=warmup_s,
    )
    results.header.setdefault("rounds", str(op_schedule.rounds))
    total = len(files)
    for kind, schedule in (("overhead", op_schedule), ("op", op_schedule), ("network", net_schedule)):
        todo = [key for (k, key) in files if k == kind and not results.has(k, key)]

        def open_session(key: str, kind: str = kind) -> TimedSession:
            session = session_class(kit / files[(kind, key)], threads, target, clock)
            results.header.setdefault("precision", session.precision)
            return session

        def done(key: str, timing: Timing, kind: str = kind) -> None:
            results.add(kind, key, timing)
            log(
                f"[{len(results.rows)}/{total}] {kind} {key}: {timing.median_ms:.3f} ms "
                f"(p10 {timing.p10_ms:.3f}, p90 {timing.p90_ms:.3f}, {timing.runs} runs)"
            )

        measure_interleaved(todo, open_session, schedule, done, seed=settings["seed"])
    return results.path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = run_kit(
            Path(__file__).resolve().parent, args.backend, args.target, args.threads, args.out, args.rounds, args.clock
        )
    except KitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: measured rows are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"done: {path} (bring it back and run: quadnas profile import {path.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
