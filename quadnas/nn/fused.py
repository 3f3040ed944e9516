"""Fused quadratic depthwise conv: `dw_a(x) * dw_b(x) + dw_c(x)` in one pass over `x`.

`quadratic_dw(x, w_a, w_b, w_c, bias)` computes what three depthwise convs (same odd kernel,
padding k // 2, stride 1, only `dw_c` with a bias) and a product would, but keeps `a` and `b`
in registers: it writes only `y` and saves only `x` for backward, which recomputes `a` and `b`.

On CPU it runs a C++ extension (`csrc/quadratic_dw.cpp`), compiled on first use with
`torch.utils.cpp_extension.load` into torch's extension cache (`$TORCH_EXTENSIONS_DIR`, by
default `~/.cache/torch_extensions`), under a name keyed by the source, Python's and torch's versions and
this CPU's instruction-set flags (it is built with `-march=native`). The kernel works on
channels-last memory (what `LayerNorm2d` hands the op inside QuadraNet); a contiguous NCHW
input is copied to channels-last first. Inside `only_if_built()` (a search) nothing is compiled:
the fused op runs there only if an earlier command built it. Elsewhere (another device or dtype, autocast, tracing,
ONNX export, `torch.compile`), when the build fails, or with `QUADNAS_FUSED=0`, the plain
three-conv form runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

ENV_VAR = "QUADNAS_FUSED"
SOURCE = Path(__file__).resolve().parent / "csrc" / "quadratic_dw.cpp"
_DTYPES = (torch.float32, torch.float64)
logger = logging.getLogger("quadnas")


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


def _build_settings() -> tuple[str, list[str]]:
    """The extension's name (keyed by source, Python, torch, flags and CPU) and its compiler flags."""
    cpu = _cpu_flags()
    # -march=native only where the cache name records the CPU it was built for
    flags = ["-O3", "-fopenmp", "-ffp-contract=fast", *(["-march=native"] if cpu else [])]
    key = "\n".join([SOURCE.read_text(), sys.version, torch.__version__, " ".join(flags), cpu, platform.machine()])
    return f"quadnas_quadratic_dw_{hashlib.sha256(key.encode()).hexdigest()[:16]}", flags


def _build_dir(name: str) -> Path:
    """Where the extension `name` is built: under `$TORCH_EXTENSIONS_DIR`, else torch's default root."""
    from torch.utils import cpp_extension

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()) / name


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


@functools.cache
def extension() -> ModuleType | None:
    """The compiled extension (built on first call, once per machine), or None where it cannot be.

    Says one line when it compiles and one when it falls back to the plain form.
    """
    from torch.utils import cpp_extension

    name, flags = _build_settings()
    try:
        build_dir = _build_dir(name)
        build_dir.mkdir(parents=True, exist_ok=True)
        if not any(build_dir.glob(f"{name}*.so")):
            logger.warning("quadnas: compiling the fused quadratic depthwise conv into %s (once, ~1 min)", build_dir)
        with _ninja_on_path():
            module: ModuleType = cpp_extension.load(
                name,
                [str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                verbose=False,
            )
    except Exception as error:  # no compiler, no ninja, a build error: the plain form still works
        summary = str(error).strip().splitlines()
        warnings.warn(
            f"quadnas: fused quadratic depthwise conv unavailable ({type(error).__name__}: "
            f"{summary[-1] if summary else ''}); using three plain convs",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return module


_compile_allowed = True  # False inside `only_if_built()`


@functools.cache
def is_built() -> bool:
    """Whether this machine's extension cache already holds the compiled extension (nothing is compiled)."""
    name, _ = _build_settings()
    return any(_build_dir(name).glob(f"{name}*.so"))


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
