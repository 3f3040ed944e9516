"""The fused quadratic depthwise conv (`quadnas.nn.fused`) against the plain three-conv form."""

from __future__ import annotations

import os
import subprocess
import sys

import onnx
import onnxruntime as ort
import pytest
import torch

from quadnas.nn import fused
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


def test_a_failed_build_falls_back_with_one_warning(monkeypatch):
    """A build error: one RuntimeWarning, then the plain form (no crash, no second warning)."""

    def fail(*args, **kwargs):
        raise RuntimeError("Error building extension 'quadnas_quadratic_dw'")

    monkeypatch.setattr("torch.utils.cpp_extension.load", fail)
    monkeypatch.setenv(fused.ENV_VAR, "1")
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
