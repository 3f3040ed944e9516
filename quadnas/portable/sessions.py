"""Timed sessions of the runtimes a kit uses (onnxruntime, OpenVINO, LiteRT), every setting they run
with, and the name of what runs the models.

A runtime is imported only when a session asks for it, so a device needs just the one it uses. onnxruntime
and OpenVINO run ONNX files (an OpenVINO INT8 kit: IR files), LiteRT's interpreter .tflite files.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .clocks import CLOCKS, timed_calls
from .errors import KitError
from .host import cpu_name
from .native_stderr import known_lines_dropped

ONNX_BACKENDS = ("onnxruntime", "openvino")
KIT_BACKENDS = (*ONNX_BACKENDS, "litert")
RUNTIME_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert"}
PIP_NAMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai-edge-litert"}


def import_runtime(backend: str) -> ModuleType:
    """The runtime's Python module, or a KitError naming what to install."""
    package = RUNTIME_PACKAGES[backend]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise KitError(f"backend '{backend}' needs the {package} package: pip install {PIP_NAMES[backend]}") from None


def runtime_version(backend: str) -> str:
    """The installed version of `backend`'s runtime, without a build suffix ("2024.4.0", not "2024.4.0-16579")."""
    module = import_runtime(backend)
    version = getattr(module, "__version__", None)
    if version is None and backend == "openvino":
        version = openvino_api(module).get_version()
    return str(version).split("-")[0]


def openvino_api(ov: ModuleType) -> ModuleType:
    """`openvino` (2023.1+) or `openvino.runtime` (2022.3 LTS, the last with MYRIAD)."""
    return ov if hasattr(ov, "Core") else importlib.import_module("openvino.runtime")


def random_input(shape: Iterable[int]) -> np.ndarray:
    """The input every session feeds its model: seeded standard normal float32."""
    return np.random.default_rng(0).standard_normal(tuple(shape), dtype=np.float32)


def static_shape(shape: Sequence[object], what: str) -> tuple[int, ...]:
    """`shape` as integers, or a KitError where a dimension is dynamic."""
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
        self._input = random_input(static_shape(inp.shape, f"input of {path}"))
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


# ---- OpenVINO -------------------------------------------------------------
def openvino_core() -> Any:  # an openvino.Core (openvino has no type information)
    """The process's one OpenVINO Core (a KitError naming the install where openvino is missing)."""
    return _shared_core(openvino_api(import_runtime("openvino")))


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
        api = openvino_api(import_runtime("openvino"))
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
        shape = static_shape([int(d) for d in model.inputs[0].get_partial_shape().to_shape()], str(path))
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
        with known_lines_dropped():
            self.interpreter = interpreter_module.Interpreter(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        shape = static_shape([int(d) for d in detail["shape"]], f"input of {path}")
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


# ---- every runtime --------------------------------------------------------
if TYPE_CHECKING:  # a type only: the kit may run on a Python older than quadnas needs
    KitSession = OnnxRuntimeSession | OpenVinoSession | LiteRtSession
SESSIONS: dict[str, type[KitSession]] = {
    "onnxruntime": OnnxRuntimeSession,
    "openvino": OpenVinoSession,
    "litert": LiteRtSession,
}


def check_target(backend: str, target: str | None) -> None:
    """A KitError where `backend` cannot run on `target` here (a device, a provider), naming those it can."""
    if backend == "openvino":
        check_openvino_device(openvino_core(), target or "CPU")
    elif backend == "litert":
        check_litert_target(target)
    else:
        ort_provider(target)


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


def device_name(backend: str, target: str | None) -> str:
    """What runs the models: the CPU's model name, or the accelerator's full name."""
    if backend == "openvino" and (target or "CPU").upper() != "CPU":
        core = openvino_core()
        device = check_openvino_device(core, target or "CPU")
        try:
            return str(core.get_property(device, "FULL_DEVICE_NAME"))
        except Exception:  # virtual devices (AUTO, MULTI) have no single name
            return device
    provider = ort_provider(target) if backend == "onnxruntime" else "CPUExecutionProvider"
    if provider != "CPUExecutionProvider":
        return f"{provider.removesuffix('ExecutionProvider')} on {cpu_name()}"
    return cpu_name()
