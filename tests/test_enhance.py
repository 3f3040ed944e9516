"""QuadEnhancer as a search choice: space, arch text, op specs, blocks and supernet sharing."""

import random

import pytest
import torch

from quadnas.errors import QuadnasError
from quadnas.nn.blocks import build_op
from quadnas.nn.net import QuadraNet
from quadnas.nn.ops import EnhancedPointwise
from quadnas.space import Arch, BlockChoice, SearchSpace
from quadnas.supernet.supernet import Supernet


@pytest.fixture(scope="module")
def tiny_qe() -> SearchSpace:
    raw = SearchSpace.load("tiny").config.model_dump()
    raw["name"] = "tiny-qe"
    raw["choices"]["enhance"] = [False, True]
    raw["enhancer_k"] = 2
    return SearchSpace.from_dict(raw)


def test_an_enhanced_token_parses_and_prints_back(tiny_qe):
    text = "k3e2q-k5e4-id-k7e4q-k3e2-id"
    arch = tiny_qe.parse(text)
    assert str(arch) == text
    assert arch.blocks[0] == BlockChoice(3, 2, enhanced=True)
    assert tiny_qe.from_params(tiny_qe.to_params(arch)) == arch


def test_a_space_without_the_choice_names_the_token_and_keeps_old_archs(tiny_space):
    assert str(tiny_space.parse("k3e2-k5e4-id-k7e4-k3e2-id")) == "k3e2-k5e4-id-k7e4-k3e2-id"
    with pytest.raises(QuadnasError, match="token 1 'k3e2q' is not in space 'tiny'"):
        tiny_space.parse("k3e2q-k5e4-id-k7e4-k3e2-id")


def test_a_space_without_enhanced_choices_hashes_as_before(tiny_space):
    raw = tiny_space.config.model_dump()
    raw["choices"]["enhance"] = [False]
    raw["enhancer_k"] = 3  # unused without an enhanced choice
    assert SearchSpace.from_dict(raw).fingerprint() == tiny_space.fingerprint()
    raw["choices"]["enhance"] = [False, True]
    assert SearchSpace.from_dict(raw).fingerprint() != tiny_space.fingerprint()
    # the shipped default space's fingerprint is the one its shipped tables and cached supernets name
    assert SearchSpace.load("quadranet-t").fingerprint() == "4b50257d8df0a877"


def test_choices_and_op_specs_carry_the_enhancer_k(tiny_qe):
    assert len(tiny_qe.choices) == 3 * 2 * 2 + 1
    specs = tiny_qe.op_specs(tiny_qe.parse("k3e2q-k5e4-id-k7e4q-k3e2-id"))
    blocks = [s for s in specs if s.op == "quadra_block"]
    assert [s.enhance for s in blocks] == [2, 0, 2, 0]
    assert "q=2" in str(blocks[0]) and "q=" not in str(blocks[1])
    enhanced = {s for s in tiny_qe.all_op_specs() if s.enhance}
    assert len(enhanced) == len([s for s in tiny_qe.all_op_specs() if s.op == "quadra_block"]) // 2


def test_build_op_makes_both_pointwise_convs_enhanced(tiny_qe):
    spec = next(s for s in tiny_qe.all_op_specs() if s.enhance)
    block = build_op(spec)
    assert isinstance(block.pw1, EnhancedPointwise) and isinstance(block.pw2, EnhancedPointwise)
    assert block.pw1.enhancer.shape == (2, spec.cin * spec.expansion) and block.pw2.enhancer.shape == (2, spec.cin)
    plain = build_op(next(s for s in tiny_qe.all_op_specs() if s.op == "quadra_block" and not s.enhance))
    assert not isinstance(plain.pw1, EnhancedPointwise)


def _perturbed(space: SearchSpace) -> Supernet:
    supernet = Supernet(space, num_classes=10).eval()
    with torch.no_grad():  # off the init (enhancers start at zero), so parity is a real check
        for p in supernet.parameters():
            p.normal_(0, 0.05)
    return supernet


def test_the_supernet_holds_one_enhancer_per_conv_and_block(tiny_qe):
    supernet = Supernet(tiny_qe, num_classes=10)
    names = [n for n, _ in supernet.named_parameters() if "enhancer" in n]
    assert len(names) == 2 * tiny_qe.num_blocks
    plain = sum(p.numel() for p in Supernet(SearchSpace.load("tiny"), num_classes=10).parameters())
    extra = sum(p.numel() for n, p in supernet.named_parameters() if "enhancer" in n)
    assert sum(p.numel() for p in supernet.parameters()) == plain + extra


def test_enhanced_and_plain_choices_share_the_pointwise_weights(tiny_qe):
    supernet = _perturbed(tiny_qe)
    x = torch.randn(2, 3, 32, 32)
    rng = random.Random(1)
    for _ in range(4):
        arch = tiny_qe.sample(rng)
        plain = Arch(tuple(BlockChoice(b.kernel, b.expansion) for b in arch.blocks))
        with torch.no_grad():
            assert torch.allclose(supernet(x, arch), supernet.extract(arch)(x), atol=1e-5, rtol=0)
            assert torch.allclose(supernet(x, plain), supernet.extract(plain)(x), atol=1e-5, rtol=0)
    for block in supernet.elastic_blocks():  # with the enhancers at zero, enhanced == plain
        block.full.pw1.enhancer.data.zero_()
        block.full.pw2.enhancer.data.zero_()
    arch = tiny_qe.largest()
    plain = Arch(tuple(BlockChoice(b.kernel, b.expansion) for b in arch.blocks))
    with torch.no_grad():
        assert torch.equal(supernet(x, arch), supernet(x, plain))


def test_an_enhanced_network_trains_its_enhancers(tiny_qe):
    net = QuadraNet(tiny_qe, tiny_qe.largest(), num_classes=10)
    with torch.no_grad():
        for block in net.stages[0]:
            block.gamma2.fill_(1.0)  # let the MLP's gradient through the near-zero layer scale
    net(torch.randn(2, 3, 32, 32)).logsumexp(dim=1).sum().backward()
    grad = net.stages[0][0].pw1.enhancer.grad
    assert grad is not None and grad.abs().sum() > 0


def test_profiling_an_enhancing_space_measures_its_enhanced_rows(tiny_qe, tmp_path):
    from quadnas.latency.measure._profile import ProfileSettings, profile
    from quadnas.latency.measure.backends import get_backend
    from quadnas.latency.predictor import LatencyPredictor

    quick = ProfileSettings(rounds=2, round_ms=2, window=4, warmup_ms=5, networks=4, network_rounds=2)
    table = profile(tiny_qe, get_backend("onnxruntime"), tmp_path / "qe.csv", quick)
    assert not table.missing(tiny_qe.all_op_specs())
    assert (table.rows["enhance"] == 2).sum() == len([s for s in tiny_qe.all_op_specs() if s.enhance])
    predictor = LatencyPredictor(table, tiny_qe)
    breakdown = predictor.breakdown(tiny_qe.parse("k3e2q-k5e4-id-k7e4q-k3e2-id"))
    assert breakdown["op"].str.contains("q=2").sum() == 2


def test_an_enhanced_network_exports_with_parity(tiny_qe, tmp_path):
    """The whole network, enhancers off zero: onnxruntime and OpenVINO agree with PyTorch."""
    import onnxruntime as ort
    import openvino as ov

    from quadnas.nn.onnx import write_onnx

    net = QuadraNet(tiny_qe, tiny_qe.parse("k3e2q-k5e4-id-k7e4q-k3e2q-id"), num_classes=10).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = net(x).numpy()
    path = write_onnx(net, (1, 3, 64, 64), tmp_path / "net.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"input": x.numpy()})[0]
    compiled = ov.Core().compile_model(ov.convert_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    scale = max(1.0, float(abs(expected).max()))
    assert abs(onnx_out - expected).max() < 1e-4 * scale and abs(compiled(x.numpy())[0] - expected).max() < 1e-4 * scale
