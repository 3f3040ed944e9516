import random

import pytest
import torch

from quadnas.nn import LayerNorm2d, QuadraNet, QuadraticDWConv, QuadraticLinear
from quadnas.nn.blocks import QuadraBlock, build_op, op_input_shape
from quadnas.space import Arch, BlockChoice, OpSpec
from quadnas.supernet import Supernet


def test_quadratic_dwconv_is_product_plus_linear():
    q = QuadraticDWConv(4, 3)
    x = torch.randn(2, 4, 9, 9)
    expected = q.dw_a(x) * q.dw_b(x) + q.dw_c(x)
    assert torch.allclose(q(x), expected)
    assert q.dw_a.groups == 4 and q.dw_a.weight.shape == (4, 1, 3, 3)
    assert q(x).shape == x.shape


def test_quadratic_linear():
    layer = QuadraticLinear(5, 3)
    x = torch.randn(7, 5)
    assert torch.allclose(layer(x), layer.a(x) * layer.b(x) + layer.c(x))


def test_layernorm2d_matches_channels_last_layernorm():
    norm = LayerNorm2d(6)
    torch.nn.init.normal_(norm.weight)
    x = torch.randn(2, 6, 5, 5)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias)
    assert torch.allclose(norm(x), ref.permute(0, 3, 1, 2), atol=1e-6)


def test_block_starts_near_identity():
    block = QuadraBlock(8, 5, 4)
    x = torch.randn(1, 8, 6, 6)
    assert (block(x) - x).abs().max() < 1e-4


@pytest.mark.parametrize(
    "spec, out_shape",
    [
        (OpSpec("stem", 64, 64, 3, 16), (1, 16, 16, 16)),
        (OpSpec("quadra_block", 16, 16, 16, 16, 5, 2), (1, 16, 16, 16)),
        (OpSpec("downsample", 16, 16, 16, 24), (1, 24, 8, 8)),
        (OpSpec("head", 2, 2, 48, 10), (1, 10)),
    ],
)
def test_build_op_shapes(spec, out_shape):
    assert build_op(spec)(torch.randn(op_input_shape(spec))).shape == out_shape


def test_quadranet_runs_every_kind_of_arch(tiny_space):
    for arch in (tiny_space.largest(), tiny_space.smallest(), tiny_space.sample(random.Random(3))):
        net = QuadraNet(tiny_space, arch, num_classes=7)
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_quadranet_init_is_convnext_style(tiny_space):
    net = QuadraNet(tiny_space, tiny_space.largest())
    block = net.stages[0][0]
    assert torch.all(block.gamma1 == 1e-6)
    assert 0.01 < block.pw1.weight.std() < 0.03
    assert block.pw1.weight.abs().max() <= 0.04 + 1e-6  # truncated at 2 std


@pytest.mark.parametrize("space_name", ["tiny", "quadranet-t", "quadranet-t-qe"])
def test_extract_matches_supernet(space_name):
    from quadnas.space import SearchSpace

    space = SearchSpace.load(space_name)
    supernet = Supernet(space, num_classes=10).eval()
    with torch.no_grad():  # move every weight off its near-identity init so parity is a real check
        for p in supernet.parameters():
            p.normal_(0, 0.05)
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(0)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(4)]
    for arch in archs:
        with torch.no_grad():
            diff = (supernet(x, arch) - supernet.extract(arch)(x)).abs().max().item()
        assert diff <= 1e-5, (str(arch), diff)


@pytest.mark.parametrize("which", ["largest", "mixed"])
def test_memory_efficient_training_has_the_same_gradients(tiny_space, which):
    """Checkpointed quadratic branch and lean MLP: the same outputs and gradients as plain autograd
    (equal up to float rounding: the layer-scale gradient is summed in another order)."""
    supernet = Supernet(tiny_space, num_classes=10)
    with torch.no_grad():
        for p in supernet.parameters():
            p.normal_(0, 0.05)
    n = len(tiny_space.largest().blocks)
    choices = [
        BlockChoice(tiny_space.config.choices.kernel[i % 2], tiny_space.config.choices.expansion[0]) for i in range(n)
    ]
    arch = tiny_space.largest() if which == "largest" else Arch(tuple(choices))
    x = torch.randn(3, 3, 64, 64)
    outputs, grads = [], []
    for enabled in (False, True):
        supernet.zero_grad()
        supernet.set_memory_efficient(enabled)
        out = supernet(x, arch)
        out.square().sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad.clone() for p in supernet.parameters() if p.grad is not None])
    assert torch.allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
    assert len(grads[0]) == len(grads[1])
    for plain, efficient in zip(*grads):
        assert torch.allclose(plain, efficient, rtol=1e-4, atol=1e-6 * plain.abs().max().item())


def test_memory_efficient_training_runs_under_autocast(tiny_space):
    """bf16 autocast: forward runs the 1x1 conv in bf16, backward outside autocast; both paths agree."""
    supernet = Supernet(tiny_space, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for enabled in (False, True):
        supernet.zero_grad()
        supernet.set_memory_efficient(enabled)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = supernet(x, tiny_space.largest()).float().square().sum()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in supernet.parameters() if p.grad is not None]))
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def _enhanced_by_index(y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """QuadEnhancer written feature by feature: z_j = y_j (1 + sum_i w_ij y_{(j+i) mod D}) + b_j."""
    features = y.shape[1]
    columns = []
    for j in range(features):
        mix = sum(w[i - 1, j] * y[:, (j + i) % features] for i in range(1, len(w) + 1))
        columns.append(y[:, j] * (1 + mix) + b[j])
    return torch.stack(columns, dim=1)


@pytest.mark.parametrize("k", [1, 3])
def test_quad_enhancer_matches_its_formula_and_its_gradients(k):
    from quadnas.nn.ops import QuadEnhancer

    enhancer = QuadEnhancer(6, k).double()
    with torch.no_grad():
        enhancer.weight.normal_()
        enhancer.bias.normal_()
    y = torch.randn(2, 6, 3, 3, dtype=torch.double, requires_grad=True)
    z = enhancer(y)
    expected = _enhanced_by_index(y, enhancer.weight, enhancer.bias)
    assert torch.allclose(z, expected)
    upstream = torch.randn_like(z)
    got = torch.autograd.grad(z, (y, enhancer.weight, enhancer.bias), upstream)
    want = torch.autograd.grad(expected, (y, enhancer.weight, enhancer.bias), upstream)
    assert all(torch.allclose(g, e) for g, e in zip(got, want, strict=True))
    assert torch.autograd.gradcheck(enhancer, (y,))


def test_an_enhanced_pointwise_layer_starts_as_the_plain_one():
    from quadnas.nn.ops import EnhancedPointwise

    enhanced, plain = EnhancedPointwise(8, 16, k=2), torch.nn.Conv2d(8, 16, 1)
    plain.load_state_dict({"weight": enhanced.weight, "bias": enhanced.bias})
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(enhanced(x), plain(x))
    with torch.no_grad():
        enhanced.enhancer.normal_()
    assert not torch.allclose(enhanced(x), plain(x))


def test_enhanced_pointwise_exports_exactly(tmp_path):
    import onnxruntime as ort
    import openvino as ov

    from quadnas.nn.onnx import write_onnx
    from quadnas.nn.ops import EnhancedPointwise

    layer = EnhancedPointwise(8, 16, k=2).eval()
    with torch.no_grad():
        layer.enhancer.normal_(std=0.5)
    x = torch.randn(1, 8, 7, 7)
    with torch.no_grad():
        expected = layer(x).numpy()
    path = write_onnx(layer, (1, 8, 7, 7), tmp_path / "e.onnx")
    onnx_out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    compiled = ov.Core().compile_model(ov.convert_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert abs(onnx_out - expected).max() < 1e-5 and abs(compiled(x.numpy())[0] - expected).max() < 1e-5
