import random

import pytest
import yaml

from quadnas.errors import QuadnasError
from quadnas.space import Arch, BlockChoice, OpSpec, SearchSpace


def test_default_space_shape(default_space):
    assert default_space.dims == [96, 192, 384, 768]
    assert default_space.depths == [3, 3, 9, 3]
    assert len(default_space.choices) == 7


def test_arch_text_round_trip(tiny_space):
    for seed in range(20):
        arch = tiny_space.sample(random.Random(seed))
        assert tiny_space.parse(str(arch)) == arch


def test_arch_is_immutable_and_hashable(tiny_space):
    arch = tiny_space.largest()
    with pytest.raises(AttributeError):
        arch.blocks = ()
    assert {arch: 1}[tiny_space.parse(str(arch))] == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ("k3e2-k3e2", "has 2 tokens but space 'tiny' has 6"),
        ("k3e2-k9e2-id-id-id-id", "token 2 'k9e2' is not in space 'tiny': use one of k3e2"),
        ("k9e2", "token 1 'k9e2' is not in space 'tiny'"),
        ("k3e2-k3e2-foo-id-id-id", "token 3 'foo'"),
    ],
)
def test_bad_arch_tokens(tiny_space, text, message):
    with pytest.raises(QuadnasError, match=message):
        tiny_space.parse(text)


def test_sampling_is_uniform_over_choices(tiny_space):
    rng = random.Random(1)
    counts = {}
    for _ in range(3500):
        for b in tiny_space.sample(rng).blocks:
            counts[b] = counts.get(b, 0) + 1
    assert set(counts) == set(tiny_space.choices)
    expected = 3500 * tiny_space.num_blocks / len(tiny_space.choices)
    assert all(abs(c - expected) / expected < 0.1 for c in counts.values())


def test_spread_spans_small_to_large(default_space):
    archs = default_space.spread(8, seed=0)
    assert len(set(archs)) == 8 and archs == default_space.spread(8, seed=0)
    identities = sorted(sum(b.is_identity for b in a.blocks) for a in archs)
    assert identities[0] <= 3 and identities[-1] >= 9
    assert not set(default_space.spread(8, seed=1, exclude=archs)) & set(archs)


def test_sampling_with_an_identity_probability(tiny_space):
    rng = random.Random(2)
    assert tiny_space.sample(rng, identity=1.0) == tiny_space.smallest()
    some = [tiny_space.sample(rng, identity=0.0) for _ in range(200)]
    assert not any(b.is_identity for a in some for b in a.blocks)
    assert {b for a in some for b in a.blocks} == {c for c in tiny_space.choices if not c.is_identity}
    no_identity = SearchSpace.from_dict(
        {**_raw(tiny_space), "choices": {"kernel": [3], "expansion": [2, 4], "identity": False}}
    )
    assert not any(b.is_identity for b in no_identity.sample(rng, identity=1.0).blocks)


def test_op_specs_of_default_largest(default_space):
    specs = default_space.op_specs(default_space.largest())
    assert specs[0] == OpSpec("stem", 224, 224, 3, 96)
    assert specs[1] == OpSpec("quadra_block", 56, 56, 96, 96, 7, 4)
    assert OpSpec("downsample", 56, 56, 96, 192) in specs
    assert OpSpec("quadra_block", 7, 7, 768, 768, 7, 4) in specs
    assert specs[-1] == OpSpec("head", 7, 7, 768, 1000)
    assert len(specs) == 1 + 18 + 3 + 1
    assert str(specs[1]) == "quadra_block in=56x56x96 k=7 e=4"


def test_identity_blocks_have_no_op_spec(default_space):
    specs = default_space.op_specs(default_space.smallest())
    assert [s.op for s in specs] == ["stem", "downsample", "downsample", "downsample", "head"]


def test_all_op_specs_covers_every_arch(tiny_space):
    every = set(tiny_space.all_op_specs())
    # 4 stages x 6 block choices + stem + 3 downsamples + head
    assert len(every) == 4 * 6 + 5
    for seed in range(30):
        assert set(tiny_space.op_specs(tiny_space.sample(random.Random(seed)))) <= every


def test_op_specs_at_other_resolution(tiny_space):
    specs = tiny_space.op_specs(tiny_space.largest(), resolution=32)
    assert specs[0].height == 32 and specs[-1].height == 1


def _raw(space: SearchSpace) -> dict:
    return space.config.model_dump()


def test_fingerprint_tracks_weights_and_latency(tiny_space):
    base = tiny_space.fingerprint()
    raw = _raw(tiny_space)
    assert SearchSpace.from_dict({**raw, "name": "renamed"}).fingerprint() == base
    assert SearchSpace.from_dict({**raw, "resolution": 96}).fingerprint() != base
    wider = {**raw, "stages": [{**raw["stages"][0], "dim": 20}] + raw["stages"][1:]}
    assert SearchSpace.from_dict(wider).fingerprint() != base
    fewer = {**raw, "choices": {**raw["choices"], "kernel": [3, 5]}}
    assert SearchSpace.from_dict(fewer).fingerprint() != base


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stagez": []}, "key 'stagez'.*allowed top-level keys"),
        ({"choices": {"kernel": [4], "expansion": [2]}}, "key 'choices.kernel'.*odd"),
        ({"resolution": 100}, "multiple of 32"),
        ({"stages": [{"dim": -1, "depth": 1}]}, "key 'stages.0.dim'"),
    ],
)
def test_bad_space_keys(tiny_space, change, message):
    with pytest.raises(QuadnasError, match=message):
        SearchSpace.from_dict({**_raw(tiny_space), **change})


def test_load_errors(tmp_path):
    with pytest.raises(QuadnasError, match="not found: give a YAML path or one of .*quadranet-t"):
        SearchSpace.load("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(QuadnasError, match="must be a YAML mapping"):
        SearchSpace.load(bad)
    bad.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(QuadnasError, match="key 'stages'"):
        SearchSpace.load(bad)


def test_check_resolution(tiny_space):
    assert tiny_space.check_resolution(64) == 64
    with pytest.raises(QuadnasError, match="not a positive multiple of 32"):
        tiny_space.check_resolution(48)


def test_block_choice_text():
    assert str(BlockChoice(5, 2)) == "k5e2"
    assert str(Arch((BlockChoice(), BlockChoice(3, 4)))) == "id-k3e4"


def test_every_arch_form_converts_back_to_the_same_arch(default_space):
    rng = random.Random(3)
    archs = [default_space.sample(rng) for _ in range(20)]
    indices = default_space.to_indices(archs)
    assert indices.shape == (20, default_space.num_blocks)
    for arch, row in zip(archs, indices, strict=True):
        assert default_space.from_indices(row) == arch
        assert default_space.from_params(default_space.to_params(arch)) == arch
        assert default_space.parse(str(arch)) == arch
    assert list(default_space.to_params(archs[0])) == list(default_space.param_names)


def test_indices_of_a_foreign_arch_name_the_block(tiny_space):
    foreign = Arch((BlockChoice(9, 2),) * tiny_space.num_blocks)
    with pytest.raises(QuadnasError, match="block choice k9e2 is not in space"):
        tiny_space.to_indices([foreign])
    with pytest.raises(QuadnasError, match="must have"):
        tiny_space.to_indices([Arch(foreign.blocks[:1])])
