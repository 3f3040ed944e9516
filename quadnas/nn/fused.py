"""Fused quadratic depthwise conv: `dw_a(x) * dw_b(x) + dw_c(x)` in one pass over `x`.

`quadratic_dw(x, w_a, w_b, w_c, bias)` computes what three depthwise convs (same odd kernel,
padding k // 2, stride 1, only `dw_c` with a bias) and a product would, but keeps `a` and `b`
in registers: it writes only `y` and saves only `x` for backward, which recomputes `a` and `b`.

On CPU it runs a C++ extension (`csrc/quadratic_dw.cpp`) built once per machine with
`torch.utils.cpp_extension.load` into torch's extension cache (`$TORCH_EXTENSIONS_DIR`, by default
`~/.cache/torch_extensions`), in a folder keyed by every build input: the source, Python's and
torch's ABI, the include paths (each virtual environment's own torch headers), the compiler and its
version, the flags and this CPU's instruction-set flags (it is built with `-march=native`). Once built,
a process loads the library directly, with no lock and no build tool; the build itself runs under
`build_lock` (a dead builder frees it; a waiter says whom it waits for and gives up after
`BUILD_WAIT_S`). The kernel works on
channels-last memory (what `LayerNorm2d` hands the op inside QuadraNet); a contiguous NCHW
input is copied to channels-last first. Inside `only_if_built()` (a search) nothing is compiled:
the fused op runs there only if an earlier command built it. Elsewhere (another device or dtype, autocast, tracing,
ONNX export, `torch.compile`), when the build fails or times out, or with `QUADNAS_FUSED=0`, the plain
three-conv form runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from quadnas.nn.build_lock import build_lock

ENV_VAR = "QUADNAS_FUSED"
SOURCE = Path(__file__).resolve().parent / "csrc" / "quadratic_dw.cpp"
_DTYPES = (torch.float32, torch.float64)
BUILD_WAIT_S = 600.0  # the longest a process waits for another's build before it runs the plain form
logger = logging.getLogger(__name__)


def plain_quadratic_dw(
    x: torch.Tensor, w_a: torch.Tensor, w_b: torch.Tensor, w_c: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The reference form: three depthwise convs and a product (what export writes)."""
    pad, groups = w_a.shape[-1] // 2, x.shape[1]
    a = F.conv2d(x, w_a, padding=pad, groups=groups)
    b = F.conv2d(x, w_b, padding=pad, groups=groups)
    return a * b + F.conv2d(x, w_c, bias, padding=pad, groups=groups)


def enabled_by_env() -> bool:
    """False when `QUADNAS_FUSED` is 0, false, no or off."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _cpu_flags() -> str:
    """This CPU's instruction-set flags (Linux x86), or '' where they cannot be read."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return ""


def _compiler() -> str:
    """The C++ compiler the build would run (`$CXX`, else `c++`), its resolved path and first version line."""
    from torch.utils import cpp_extension

    command = cpp_extension.get_cxx_compiler()
    path = shutil.which(command) or command
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        version = (done.stdout.strip().splitlines() or [""])[0]
    except (OSError, subprocess.SubprocessError):
        version = "unknown"  # the build will say what is wrong with the compiler
    return f"{os.path.realpath(path)}: {version}"


@dataclass(frozen=True)
class _Build:
    """The extension's build: its compiler flags, and every input that shapes the library.

    Two processes share a compiled library only where all of `inputs` agree: another torch or
    Python, another virtual environment's headers, another compiler, flags or CPU each get their own.
    """

    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        """The extension's module name, keyed by all its inputs."""
        key = "\n".join(f"{field}={value}" for field, value in self.inputs)
        return f"quadnas_quadratic_dw_{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    @property
    def directory(self) -> Path:
        """Where it is built: under `$TORCH_EXTENSIONS_DIR`, else torch's default root."""
        from torch.utils import cpp_extension

        root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
        return Path(root) / self.name

    @property
    def library(self) -> Path:
        """The compiled library, present only once a build finished."""
        return self.directory / f"{self.name}{importlib.machinery.EXTENSION_SUFFIXES[-1]}"

    @property
    def lock(self) -> Path:
        """The lock whoever builds holds (`build_lock`)."""
        return self.directory / "build.lock"


@functools.cache
def build() -> _Build:
    """This process's build of the extension: flags and every build input (the source, torch and Python's ABI,
    the include paths, the compiler and its version, the flags, the CPU)."""
    from torch.utils import cpp_extension

    cpu = _cpu_flags()
    # -march=native only where the key records the CPU it was built for
    cflags = ("-O3", "-fopenmp", "-ffp-contract=fast", *(["-march=native"] if cpu else []))
    ldflags = ("-fopenmp",)
    inputs = (
        ("source", hashlib.sha256(SOURCE.read_bytes()).hexdigest()),
        ("python", f"{sys.version} {sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}"),
        ("torch", f"{torch.__version__} {torch.version.git_version} cxx11abi={torch._C._GLIBCXX_USE_CXX11_ABI}"),
        ("include", os.pathsep.join([*cpp_extension.include_paths(), sysconfig.get_paths()["include"]])),
        ("compiler", _compiler()),
        ("cflags", " ".join(cflags)),
        ("ldflags", " ".join(ldflags)),
        ("cpu", f"{platform.machine()} {cpu}"),
    )
    return _Build(cflags, ldflags, inputs)


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """PATH with the `ninja` package's binary (a dependency) while building: a virtual environment's
    `bin/` is not on PATH unless it was activated."""
    before = os.environ.get("PATH", "")
    try:
        import ninja

        if shutil.which("ninja") is None:
            os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, before])
    except ImportError:
        pass
    try:
        yield
    finally:
        os.environ["PATH"] = before


def _import(name: str, library: Path) -> ModuleType:
    """Load the compiled library as the Python module `name` (no build tool runs)."""
    spec = importlib.util.spec_from_file_location(name, library)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {library}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compile(spec: _Build) -> ModuleType:
    """Build the extension under its lock and place the library (atomically) where loads find it.

    Whoever waits for the lock and then finds the library loads it instead of building again.
    """
    from torch.utils import cpp_extension

    what = f"the fused quadratic depthwise conv's build ({spec.directory})"
    with build_lock(spec.lock, what, timeout=BUILD_WAIT_S) as left_behind:
        if spec.library.exists():
            return _import(spec.name, spec.library)
        unfinished = f"; the build by {left_behind} did not finish" if left_behind else ""
        logger.warning(
            "quadnas: compiling the fused quadratic depthwise conv into %s (once, ~1 min%s)", spec.directory, unfinished
        )
        for scratch in spec.directory.glob("build-*"):  # what builds that died left; only the holder builds
            shutil.rmtree(scratch, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix="build-", dir=spec.directory))
        try:
            with _ninja_on_path():
                module: ModuleType = cpp_extension.load(
                    spec.name,
                    [str(SOURCE)],
                    extra_cflags=list(spec.cflags),
                    extra_ldflags=list(spec.ldflags),
                    build_directory=str(scratch),
                    verbose=False,
                )
            (spec.directory / "inputs.json").write_text(json.dumps(dict(spec.inputs), indent=1) + "\n")
            placed = spec.library.with_name(f"{spec.library.name}.{os.getpid()}")
            shutil.copyfile(scratch / spec.library.name, placed)
            os.replace(placed, spec.library)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return module


@functools.cache
def extension() -> ModuleType | None:
    """The compiled extension, or None where it cannot be.

    Loads the library directly where a build with the same inputs finished (no lock, no build tool);
    else compiles it once per machine (`_compile`). Says one line when it compiles, and one when it
    falls back to the plain form.
    """
    try:
        spec = build()
        if spec.library.exists():
            return _import(spec.name, spec.library)
        return _compile(spec)
    except Exception as error:  # no compiler, no ninja, a build error, a stuck build: the plain form still works
        summary = str(error).strip().splitlines()
        warnings.warn(
            f"quadnas: fused quadratic depthwise conv unavailable ({type(error).__name__}: "
            f"{summary[-1] if summary else ''}); using three plain convs",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


_compile_allowed = True  # False inside `only_if_built()`


@functools.cache
def is_built() -> bool:
    """Whether this machine's extension cache already holds the compiled extension (nothing is compiled)."""
    return build().library.exists()


@contextlib.contextmanager
def only_if_built() -> Iterator[None]:
    """Within, the fused op runs only where its extension is already compiled; else the plain form,
    and nothing is compiled.

    `quadnas search` runs inside it: its quarter-width supernet gains nothing measurable from the
    fused op, and a first compile (~40 s) would slow a first search by more than that.
    """
    global _compile_allowed
    before, _compile_allowed = _compile_allowed, False
    try:
        yield
    finally:
        _compile_allowed = before


def is_available() -> bool:
    """Whether the fused op can run here (not disabled by `QUADNAS_FUSED`, extension built, or allowed to build)."""
    if not enabled_by_env():
        return False
    if not _compile_allowed and extension.cache_info().currsize == 0 and not is_built():
        return False
    return extension() is not None


def _tracing() -> bool:
    """Whether a tracer, exporter or compiler records this call (it must see plain convs)."""
    return (
        torch._C._get_tracing_state() is not None  # what torch.jit.is_tracing() reads
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()  # torch.export, which LiteRT's converter runs
    )


def applies(x: torch.Tensor) -> bool:
    """Whether `quadratic_dw` would run the fused kernel on `x` (else the plain form)."""
    return (
        x.device.type == "cpu"
        and x.dtype in _DTYPES
        and x.dim() == 4
        and not torch.is_autocast_enabled("cpu")
        and not _tracing()
        and is_available()
    )


class _QuadraticDW(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ext = extension()
        assert ext is not None
        nchw = not x.is_contiguous(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x, weights)
        ctx.nchw = nchw
        y: torch.Tensor = ext.forward(x, weights, bias)
        return y.contiguous() if nchw else y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ext = extension()
        assert ext is not None
        x, weights = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad
        grad_x, grad_w, grad_b = ext.backward(
            grad.contiguous(memory_format=torch.channels_last), x, weights, needs_x, needs_w or needs_b
        )
        if needs_x and ctx.nchw:
            grad_x = grad_x.contiguous()
        return (grad_x if needs_x else None, grad_w if needs_w else None, grad_b if needs_b else None)


def quadratic_dw(
    x: torch.Tensor, w_a: torch.Tensor, w_b: torch.Tensor, w_c: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """`conv(x, w_a) * conv(x, w_b) + conv(x, w_c, bias)`: depthwise, odd kernel, padding k // 2.

    `x` is (N, C, H, W); each weight (C, 1, k, k), views such as centre crops allowed; `bias` (C,)
    or None. Fused where `applies(x)`, else the plain form; the two agree up to float rounding.
    """
    if not applies(x):
        return plain_quadratic_dw(x, w_a, w_b, w_c, bias)
    if bias is None:
        bias = w_c.new_zeros(w_c.shape[0])
    weights = torch.stack((w_a, w_b, w_c)).to(x.dtype)  # contiguous (3, C, 1, k, k)
    # torch.autograd.Function.apply is unannotated
    y: torch.Tensor = _QuadraticDW.apply(x, weights, bias.to(x.dtype))  # type: ignore[no-untyped-call]
    return y
