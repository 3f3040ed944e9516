"""Runtimes behind one interface: onnxruntime, OpenVINO, LiteRT and torch (cpu, cuda).

`get_backend(name, target, threads, precision=...)` checks the request and returns a `Backend`;
`Backend.prepare(module, input_shape, channels_last)` returns a runner whose `time(n)`
calls the model `n` times and returns the seconds each call took. The ONNX backends export the
module once (`models.write_model`: ONNX, quantized to INT8 for precision int8) into a work
directory and time it with the sessions of `quadnas.portable`, the same code a profiling kit runs on
a remote device. LiteRT converts the module to a .tflite file the same way (`models.write_model`) and times
it with LiteRT's interpreter (XNNPACK on).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar, ParamSpec, TypedDict, TypeVar

import torch
from torch import nn

from quadnas.errors import QuadnasError
from quadnas.latency.measure.models import model_files, model_suffix, write_model
from quadnas.latency.names import BACKEND_NAMES
from quadnas.latency.precision import INT8, check_profile_precision
from quadnas.portable import KitError, sessions
from quadnas.portable.clocks import CLOCKS, check_clock, timed_calls
from quadnas.portable.host import cpu_name
from quadnas.portable.timing import Schedule, TimedSession, Timing, measure_interleaved

P = ParamSpec("P")
R = TypeVar("R")
INPUT_LAYOUT = "channels-last after the stem"  # what the profiler feeds eager torch, as a QuadraNet does
INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime",
    "openvino": "pip install quadnas[openvino]",
    "litert": "pip install 'quadnas[litert]'",
    "torch": "pip install torch",
}
# The packages a backend needs here: LiteRT converts modules (litert-torch, ai-edge-quantizer) and times them
# (ai-edge-litert); a kit's run.py needs only the last.
PACKAGES = {"litert": ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")}


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the kit runner's user-facing errors into QuadnasError."""
    try:
        yield
    except KitError as e:
        raise QuadnasError(str(e)) from None


def require_package(backend: str) -> None:
    """A QuadnasError naming the pip command when a package the backend needs is missing."""
    for package in PACKAGES.get(backend, (backend,)):
        if importlib.util.find_spec(package) is None:
            raise QuadnasError(
                f"backend '{backend}' needs the {package} package, which is not installed: {INSTALL_HINTS[backend]}"
            )


def parse_threads(value: int | str) -> int:
    """A thread count: a whole number >= 1 ('2' and 2 alike)."""
    try:
        threads = int(str(value).strip())
    except ValueError:
        threads = 0
    if threads < 1 or isinstance(value, bool):
        raise QuadnasError(f"threads must be a whole number >= 1, got '{value}': e.g. --threads 1")
    return threads


def keeps_torch_threads(func: Callable[P, R]) -> Callable[P, R]:
    """`func`, with torch's process-wide thread count restored when it returns: the torch backend sets its
    own for every timed round, and a caller's process keeps the count it had."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        threads = torch.get_num_threads()
        try:
            return func(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


def time_session(session: TimedSession, rounds: int, round_s: float, warmup_s: float) -> Timing:
    """One prepared model timed as the profiler times models: `rounds` rounds of >= `round_s` s after a warm-up."""
    found: list[Timing] = []
    schedule = Schedule(rounds=rounds, round_s=round_s, window=1, warmup_s=warmup_s)
    measure_interleaved(["model"], lambda _: session, schedule, lambda _, timing: found.append(timing))
    return found[0]


class _Described(TypedDict):
    backend: str
    backend_version: str
    target: str
    threads: int
    clock: str
    device: str
    precision: str


class Description(_Described, total=False):
    """A backend's part of a measured table's header (`Backend.describe`; a kit's results header gives the same)."""

    input_layout: str  # eager torch only
    delegate: str  # LiteRT only
    runtime_config: dict[str, str]  # the runtimes of files (`sessions.runtime_config`): every setting they ran with


class Backend(ABC):
    """A runtime on one target with a fixed number of threads, timing FP32 or INT8 (`quantized`) models."""

    name: ClassVar[str]

    def __init__(
        self, target: str, threads: int, work_dir: Path | None = None, clock: str = "auto", precision: str = "fp32"
    ):
        with _user_errors():
            self.clock = check_clock(clock, threads, target)
        self.target, self.threads = target, threads
        self.quantized = check_profile_precision(precision, self.name) == INT8
        self.precision = precision  # a float runtime's own precision once a model is compiled (`prepare`)
        self._work_dir = work_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._exported = 0

    @property
    @abstractmethod
    def version(self) -> str:
        """The runtime's version."""

    @property
    @abstractmethod
    def device_name(self) -> str:
        """What runs the models, e.g. the CPU model name or the GPU name."""

    @abstractmethod
    def prepare(self, module: nn.Module, input_shape: tuple[int, ...], channels_last: bool = False) -> TimedSession:
        """A runner for `module` on inputs of `input_shape`.

        `channels_last`: the input is laid out NHWC in memory, as every activation after
        a QuadraNet's stem is (its LayerNorms permute); only eager torch sees the layout.
        """

    @property
    def work_dir(self) -> Path:
        """Where exported models go: the given directory, or a temporary one."""
        if self._work_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="quadnas-models-")
            self._work_dir = Path(self._tmp.name)
        return self._work_dir

    def describe(self) -> Description:
        """Backend, version, target, threads and device, for a table's metadata."""
        return {
            "backend": self.name,
            "backend_version": self.version,
            "target": self.target,
            "threads": self.threads,
            "clock": self.clock,
            "device": self.device_name,
            "precision": self.precision,
        }


class OnnxBackend(Backend):
    """A runtime that runs exported ONNX files through a portable session (`quadnas.portable.sessions`)."""

    session_class: ClassVar[type[sessions.KitSession]]

    def __init__(
        self,
        target: str | None,
        threads: int,
        work_dir: Path | None = None,
        clock: str = "auto",
        precision: str = "fp32",
    ):
        with _user_errors():
            checked = self.check_target(target)
        super().__init__(checked, threads, work_dir, clock, precision)

    @staticmethod
    @abstractmethod
    def check_target(target: str | None) -> str:
        """The runtime's name of `target` (None: its CPU), once it is checked to be there."""

    @property
    def version(self) -> str:
        with _user_errors():
            return sessions.runtime_version(self.name)

    @property
    def device_name(self) -> str:
        with _user_errors():
            return sessions.device_name(self.name, self.target)

    def describe(self) -> Description:
        """As `Backend.describe`, plus every runtime setting the sessions run with."""
        return {**super().describe(), "runtime_config": sessions.runtime_config(self.name, self.threads)}

    def prepare(self, module: nn.Module, input_shape: tuple[int, ...], channels_last: bool = False) -> TimedSession:
        path = self.write_model(module, input_shape, channels_last)
        session = self.prepare_onnx(path)
        for file in model_files(path):  # the session holds the model; free the disk (networks are ~100 MB)
            with contextlib.suppress(OSError):
                file.unlink()
        return session

    def write_model(self, module: nn.Module, input_shape: tuple[int, ...], channels_last: bool = False) -> Path:
        """The file this backend times for `module` (`models.write_model`), in the work directory."""
        self._exported += 1
        name = f"model{self._exported:04d}{model_suffix(self.name, self.precision)}"
        return write_model(module, input_shape, self.work_dir / name, self.name, self.precision, channels_last)

    def prepare_onnx(self, path: Path) -> TimedSession:
        """A runner for a model file (ONNX; an IR for OpenVINO; .tflite for LiteRT) with a fixed input shape."""
        with _user_errors():
            session = self.session_class(path, self.threads, self.target, self.clock)
        if not self.quantized:  # a quantized model's precision is INT8, whatever the runtime does with the rest
            self.precision = session.precision
        return session


class OnnxRuntimeBackend(OnnxBackend):
    """onnxruntime: intra-op threads fixed, one inter-op thread, sequential execution."""

    name = "onnxruntime"
    session_class = sessions.OnnxRuntimeSession

    @staticmethod
    def check_target(target: str | None) -> str:
        return sessions.ort_provider(target).removesuffix("ExecutionProvider").upper()


class OpenVinoBackend(OnnxBackend):
    """OpenVINO on any device (CPU, GPU, NPU; MYRIAD on 2022.3 LTS): latency hint, one stream."""

    name = "openvino"
    session_class = sessions.OpenVinoSession

    @staticmethod
    def check_target(target: str | None) -> str:
        return sessions.check_openvino_device(sessions.openvino_core(), target or "CPU")


class LiteRtBackend(OnnxBackend):
    """LiteRT's interpreter on the CPU: threads fixed, XNNPACK (its default delegate) on; files from litert-torch."""

    name = "litert"
    session_class = sessions.LiteRtSession

    @staticmethod
    def check_target(target: str | None) -> str:
        return sessions.check_litert_target(target)

    def describe(self) -> Description:
        """As `Backend.describe`, plus the delegate the interpreter runs the files on."""
        return {**super().describe(), "delegate": sessions.LITERT_DELEGATE}


class TorchRunner:
    """Eager PyTorch; on CUDA each call is timed with CUDA events."""

    def __init__(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        device: torch.device,
        threads: int,
        clock: Callable[[], float] = time.perf_counter,
        channels_last: bool = False,
    ):
        self.module = module.eval().to(device)
        self.device, self.threads, self.clock = device, threads, clock
        self.input = torch.randn(input_shape, device=device)
        if channels_last:
            self.input = self.input.contiguous(memory_format=torch.channels_last)

    def time(self, n: int) -> list[float]:
        torch.set_num_threads(self.threads)
        with torch.inference_mode():
            if self.device.type == "cuda":
                return self._time_cuda(n)
            return timed_calls(lambda: self.module(self.input), n, self.clock)

    def _time_cuda(self, n: int) -> list[float]:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        torch.cuda.synchronize(self.device)
        for start, end in events:
            start.record()
            self.module(self.input)
            end.record()
        torch.cuda.synchronize(self.device)
        return [start.elapsed_time(end) / 1e3 for start, end in events]


class TorchBackend(Backend):
    """PyTorch eager on 'cpu' (threads fixed) or 'cuda[:N]'."""

    name = "torch"

    def __init__(
        self,
        target: str | None,
        threads: int,
        work_dir: Path | None = None,
        clock: str = "auto",
        precision: str = "fp32",
    ):
        wanted = (target or "cpu").strip().lower()
        if wanted != "cpu" and not wanted.startswith("cuda"):
            raise QuadnasError(f"torch target '{target}' is not supported: use cpu or cuda")
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise QuadnasError(f"torch target '{target}' needs CUDA, which is not available here: use --target cpu")
        try:
            self.device = torch.device(wanted)
        except RuntimeError:
            raise QuadnasError(f"torch target '{target}' is not a device: use cpu, cuda or cuda:N") from None
        super().__init__(wanted, threads, work_dir, clock, precision)

    @property
    def version(self) -> str:
        return torch.__version__.split("+")[0]

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return cpu_name()

    def describe(self) -> Description:
        """As `Backend.describe`, plus the memory layout eager torch sees (ONNX graphs carry none)."""
        return {**super().describe(), "input_layout": INPUT_LAYOUT}

    def prepare(self, module: nn.Module, input_shape: tuple[int, ...], channels_last: bool = False) -> TimedSession:
        return TorchRunner(module, input_shape, self.device, self.threads, CLOCKS[self.clock], channels_last)


BACKENDS: dict[str, Callable[[str | None, int, Path | None, str, str], Backend]] = dict(
    zip(BACKEND_NAMES, (OnnxRuntimeBackend, OpenVinoBackend, TorchBackend, LiteRtBackend), strict=True)
)


def get_backend(
    name: str,
    target: str | None = None,
    threads: int | str = 1,
    work_dir: Path | None = None,
    clock: str = "auto",
    precision: str = "fp32",
) -> Backend:
    """The backend `name` on `target` (default: CPU) with `threads` threads, timed on `clock`, timing
    models at `precision` ('fp32', or 'int8': quantized, onnxruntime and OpenVINO only).

    `clock`: 'wall', 'cpu' (process CPU time: 1 thread on a CPU only) or 'auto' (cpu where it
    equals latency, else wall); see `quadnas.portable.clocks`.
    """
    if name not in BACKENDS:
        raise QuadnasError(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    threads = parse_threads(threads)
    check_profile_precision(precision, name)
    require_package(name)
    return BACKENDS[name](target, threads, work_dir, clock, precision)
