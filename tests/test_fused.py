"""The fused quadratic depthwise conv (`quadnas.nn.fused`) against the plain three-conv form."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
import torch

from quadnas.nn import fused
from quadnas.nn.build_lock import BuildLockTimeout, build_lock, read_holder
from quadnas.nn.fused import plain_quadratic_dw, quadratic_dw
from quadnas.nn.net import QuadraNet
from quadnas.nn.onnx import write_onnx

needs_extension = pytest.mark.skipif(not fused.is_available(), reason="the fused extension could not be built here")


def _inputs(
    kernel: int, channels_last: bool, dtype: torch.dtype = torch.float32, shape: tuple[int, ...] = (2, 19, 9, 11)
) -> list[torch.Tensor]:
    """x (odd sizes, a channel count that leaves a vector tail), three weights and a bias."""
    generator = torch.Generator().manual_seed(kernel)
    n, c, h, w = shape
    x = torch.randn(shape, generator=generator, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weights = [0.3 * torch.randn(c, 1, kernel, kernel, generator=generator, dtype=dtype) for _ in range(3)]
    return [x, *weights, torch.randn(c, generator=generator, dtype=dtype)]


@needs_extension
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_forward_and_gradients_match_the_plain_form(kernel, channels_last):
    inputs = _inputs(kernel, channels_last)
    ours = [t.clone().requires_grad_() for t in inputs]
    plain = [t.clone().requires_grad_() for t in inputs]
    y, expected = quadratic_dw(*ours), plain_quadratic_dw(*plain)
    assert torch.allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    grad = torch.randn_like(expected)
    y.backward(grad)
    expected.backward(grad)
    for name, a, b in zip(("x", "w_a", "w_b", "w_c", "bias"), ours, plain):
        scale = b.grad.abs().max().item()
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5 * scale), name


@needs_extension
@pytest.mark.parametrize("shape", [(1, 16, 7, 7), (3, 33, 5, 13), (2, 8, 1, 1)])
def test_float32_is_as_close_to_float64_as_the_plain_form(shape):
    """Both float32 forms err alike against a float64 reference (also: batch 1, tiny maps, k > size)."""
    inputs = _inputs(7, True, shape=shape)
    reference = plain_quadratic_dw(*(t.double() for t in inputs))
    ours, plain = quadratic_dw(*inputs).double(), plain_quadratic_dw(*inputs).double()
    bound = 1e-5 * reference.abs().max().item()
    assert (ours - reference).abs().max().item() <= max(bound, 4 * (plain - reference).abs().max().item())


@needs_extension
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_gradcheck_in_float64(channels_last):
    inputs = [t.requires_grad_() for t in _inputs(3, channels_last, torch.float64, shape=(2, 3, 5, 6))]
    assert torch.autograd.gradcheck(quadratic_dw, inputs, eps=1e-6, atol=1e-7)


@needs_extension
def test_centre_cropped_weights_and_no_bias():
    """Non-contiguous weight views (the supernet's crops) and a missing bias."""
    x, *weights, _ = _inputs(7, True)
    crops = [w[..., 1:6, 1:6] for w in weights]
    assert not crops[0].is_contiguous()
    assert torch.allclose(quadratic_dw(x, *crops, None), plain_quadratic_dw(x, *crops, None), rtol=1e-5, atol=1e-5)


@needs_extension
def test_only_the_input_is_saved_for_backward():
    """Fused: x (and the stacked weights) saved; plain: x, a and b and more. Float32, channels-last."""
    x, *weights, bias = _inputs(5, True, shape=(2, 16, 12, 12))
    weights = [w.requires_grad_() for w in weights]
    x.requires_grad_()

    def saved(fn) -> int:
        sizes: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x, *weights, bias)
        return sum(sizes.values())

    assert saved(quadratic_dw) < x.nbytes + 3 * weights[0].nbytes + 1024 < saved(plain_quadratic_dw)


def test_the_env_var_turns_it_off():
    """QUADNAS_FUSED=0: the plain form runs and nothing is compiled or warned about (fresh process)."""
    code = (
        "import warnings, torch\n"
        "warnings.simplefilter('error')\n"
        "from quadnas.nn import fused\n"
        "x = torch.randn(1, 4, 6, 6)\n"
        "w = [torch.randn(4, 1, 3, 3) for _ in range(3)]\n"
        "assert not fused.is_available() and not fused.applies(x)\n"
        "assert torch.equal(fused.quadratic_dw(x, *w, None), fused.plain_quadratic_dw(x, *w, None))\n"
        "assert fused.extension.cache_info().currsize == 0\n"
    )
    env = {**os.environ, fused.ENV_VAR: "0"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_only_if_built_compiles_nothing_on_an_empty_cache(tmp_path):
    """Inside `only_if_built()` with an empty extension cache: the plain form, nothing compiled (fresh process)."""
    code = (
        "import torch\n"
        "from quadnas.nn import fused\n"
        "x = torch.randn(1, 4, 6, 6)\n"
        "w = [torch.randn(4, 1, 3, 3) for _ in range(3)]\n"
        "with fused.only_if_built():\n"
        "    assert not fused.is_built() and not fused.applies(x)\n"
        "    assert torch.equal(fused.quadratic_dw(x, *w, None), fused.plain_quadratic_dw(x, *w, None))\n"
        "assert fused.extension.cache_info().currsize == 0\n"
    )
    env = {**os.environ, fused.ENV_VAR: "1", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("*.so"))


@needs_extension
def test_only_if_built_uses_an_extension_already_built():
    """Where the extension is in the cache (this machine built it above), a search runs it fused."""
    x = _inputs(3, True)[0]
    with fused.only_if_built():
        assert fused.applies(x)


def test_a_failed_build_falls_back_with_one_warning(monkeypatch, tmp_path):
    """A build error: one RuntimeWarning, then the plain form (no crash, no second warning)."""

    def fail(*args, **kwargs):
        raise RuntimeError("Error building extension 'quadnas_quadratic_dw'")

    monkeypatch.setattr("torch.utils.cpp_extension.load", fail)
    monkeypatch.setenv(fused.ENV_VAR, "1")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # nothing built there: the build runs and fails
    fused.extension.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="unavailable") as record:
            x, *weights, bias = _inputs(3, False)
            assert not fused.applies(x)
            assert torch.equal(quadratic_dw(x, *weights, bias), plain_quadratic_dw(x, *weights, bias))
        assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    finally:
        fused.extension.cache_clear()


@needs_extension
def test_a_quadranet_runs_fused_and_exports_plain_convs(tiny_space, tmp_path):
    """Eager QuadraNet goes through the fused op; its ONNX file holds only plain Conv nodes for it."""
    net = QuadraNet(tiny_space, tiny_space.largest()).eval()
    calls = []
    original = fused._QuadraticDW.forward

    def counting(ctx, *args):
        calls.append(1)
        return original(ctx, *args)

    x = torch.randn(1, tiny_space.config.in_channels, 64, 64)
    try:
        fused._QuadraticDW.forward = staticmethod(counting)  # type: ignore[method-assign]
        with torch.no_grad():
            out = net(x)
    finally:
        fused._QuadraticDW.forward = staticmethod(original)  # type: ignore[method-assign]
    blocks = len(tiny_space.largest().blocks)
    assert len(calls) == blocks
    path = write_onnx(net, (1, tiny_space.config.in_channels, 64, 64), tmp_path / "net.onnx")
    nodes = onnx.load(str(path)).graph.node
    ops = [node.op_type for node in nodes]
    depthwise = [
        node for node in nodes if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]
    assert len(depthwise) == 3 * blocks, ops
    assert not [op for op in ops if "quadratic" in op.lower() or op == "PythonOp"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(onnx_out - out.numpy()).max() <= 1e-4 * max(1.0, abs(out.numpy()).max())


# The build lock and the load path. Children hold the lock in their own process (and session), so a
# kill -9 ends what an OOM kill or a power cut would; they say "held" once they hold it.
_HOLD = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from quadnas.nn.build_lock import build_lock\n"
    "with build_lock(Path(sys.argv[1]), 'a test build', timeout=60):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


@contextlib.contextmanager
def _holder(lock: Path) -> Iterator[subprocess.Popen[str]]:
    """A live process that holds the build lock `lock` (killed with SIGKILL on the way out)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lock)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield child
    finally:
        _kill(child)


def _kill(child: subprocess.Popen[str]) -> None:
    """kill -9 the child and whatever it started (its compiler), and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=60)


def _waiting_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]


def test_a_lock_whose_holder_was_killed_is_taken_over_at_once(tmp_path, caplog):
    """kill -9 while holding: the next taker gets the lock without waiting and learns who died holding it."""
    lock = tmp_path / "build.lock"
    with _holder(lock) as child:
        _kill(child)
        with caplog.at_level(logging.WARNING, logger="quadnas"), build_lock(lock, "a test build", timeout=60) as left:
            assert read_holder(lock) is not None and read_holder(lock).pid == os.getpid()
    assert left is not None and left.pid == child.pid and left.host == socket.gethostname()
    assert not _waiting_lines(caplog)
    assert read_holder(lock) is None  # released: no record left


def test_a_waiter_names_the_holder_at_once_and_again_then_gives_up(tmp_path, caplog):
    lock = tmp_path / "build.lock"
    with _holder(lock) as child, caplog.at_level(logging.WARNING, logger="quadnas"):
        with pytest.raises(BuildLockTimeout, match=f"held by pid {child.pid} on"):
            with build_lock(lock, "a test build", timeout=2.5, notice_every=1.0):
                pytest.fail("took a lock another process holds")
    lines = _waiting_lines(caplog)
    assert 2 <= len(lines) <= 4, lines  # one at once, then one a second
    assert all(f"pid {child.pid} on {socket.gethostname()}" in line for line in lines)


@needs_extension
def test_a_built_op_loads_without_the_lock_or_a_build_tool(tmp_path, monkeypatch):
    """The library is there: a fresh process loads it at once though another holds the build lock and
    torch's own baton file is left behind, and says nothing (a wait would time out after 5 s and warn)."""
    library = fused.build().library
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    there = fused.build().directory
    there.mkdir()
    shutil.copyfile(library, there / library.name)
    (there / "lock").touch()  # torch's FileBaton, as a kill -9 leaves it
    code = (
        "import torch\n"
        "from quadnas.nn import fused\n"
        "fused.BUILD_WAIT_S = 5.0\n"
        "x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)\n"
        "w = [torch.randn(4, 1, 3, 3) for _ in range(3)]\n"
        "assert fused.applies(x), 'not loaded'\n"
        "assert torch.allclose(fused.quadratic_dw(x, *w, None), fused.plain_quadratic_dw(x, *w, None), atol=1e-5)\n"
        "assert fused.extension().__file__ == str(fused.build().library)\n"
    )
    with _holder(fused.build().lock):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_stuck_build_times_out_to_the_plain_form(tmp_path, monkeypatch, caplog):
    """No library and a live holder that never finishes: the waiter says whom it waits for, then one
    warning and the plain form."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(fused.ENV_VAR, "1")
    monkeypatch.setattr(fused, "BUILD_WAIT_S", 1.5)
    x, *weights, bias = _inputs(3, True)
    fused.extension.cache_clear()
    try:
        with _holder(fused.build().lock) as child, caplog.at_level(logging.WARNING, logger="quadnas"):
            with pytest.warns(RuntimeWarning, match="BuildLockTimeout") as record:
                assert not fused.applies(x)
            assert torch.equal(quadratic_dw(x, *weights, bias), plain_quadratic_dw(x, *weights, bias))
    finally:
        fused.extension.cache_clear()
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    lines = _waiting_lines(caplog)
    assert lines and f"pid {child.pid}" in lines[0]
    assert not list(tmp_path.rglob("*.so"))


def _second_venv(where: Path) -> Path:
    """A second virtual environment with its own copy of torch (a link to this one's, imported from the new
    environment's path, so its headers lie elsewhere) and quadnas; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=300)
    site_packages = Path(
        subprocess.run(
            [str(where / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_packages / "torch").symlink_to(Path(torch.__file__).parent, target_is_directory=True)
    this_site = sysconfig.get_paths()["purelib"]
    (site_packages / "this_venv.pth").write_text(f"import site; site.addsitedir({this_site!r})\n")
    return where / "bin" / "python"


_LOAD = (
    "import torch\nfrom quadnas.nn import fused\nassert fused.extension() is not None\nprint(fused.build().library)\n"
)


@pytest.mark.slow
@needs_extension
def test_two_venvs_build_once_each_and_a_killed_build_is_taken_over(tmp_path, monkeypatch):
    """Two virtual environments with their own torch headers share one extension cache: the second
    compiles once (taking over from a build killed with kill -9, with one line), the first never
    rebuilds, and neither rebuilds the other's. Compiles once (~1 min)."""
    cache = tmp_path / "ext"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(cache), fused.ENV_VAR: "1"}
    ours = fused.build().library
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(cache))
    (cache / ours.parent.name).mkdir(parents=True)
    shutil.copy2(ours, fused.build().library)  # this environment's finished build
    ours = fused.build().library
    before = ours.stat()
    other = _second_venv(tmp_path / "venv")

    killed = subprocess.Popen([str(other), "-c", _LOAD], env=env, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(cache.glob("*/build-*/*.o*")) and not list(cache.glob("*/build-*/build.ninja")):
            assert killed.poll() is None and time.monotonic() < deadline, "the other environment never built"
            time.sleep(0.2)
    finally:
        _kill(killed)  # mid-build, holding the build lock

    first = subprocess.run([str(other), "-c", _LOAD], env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.strip().splitlines()
    assert len(lines) == 1 and "compiling" in lines[0], first.stderr
    assert f"the build by pid {killed.pid} on" in lines[0] and "did not finish" in lines[0]
    theirs = Path(first.stdout.strip())
    assert theirs.parent != ours.parent and theirs.exists()
    built = theirs.stat()

    for python in (sys.executable, str(other)):  # each loads its own, nobody compiles
        again = subprocess.run([python, "-c", _LOAD], env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and again.stderr == "", again.stderr
    assert (ours.stat().st_ino, ours.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (theirs.stat().st_ino, theirs.stat().st_mtime_ns) == (built.st_ino, built.st_mtime_ns)
    assert sorted(p.name for p in cache.iterdir()) == sorted([ours.parent.name, theirs.parent.name])
    assert not list(cache.glob("*/build-*"))  # the killed build's scratch was cleared
