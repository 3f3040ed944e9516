"""The benchmark baselines (quadnas.bench.baselines: HorNet, ConvNeXt, QuadraNet) and scripts/bench_blocks.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from quadnas.bench.baselines import (
    DIMS,
    VARIANTS,
    ConvNeXtBlock,
    GnConv,
    HorNetBlock,
    count_macs,
    equal_cost_hidden,
    gnconv_dims,
    stage_shape,
)

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
#: a subprocess timeout only bounds a hang: a loaded machine 3-4x slower than ours needs minutes
HANG_S = 600
sys.path.insert(0, str(SCRIPTS))

from bench_blocks import parse_args, saved_bytes  # noqa: E402


@pytest.mark.parametrize("name", list(VARIANTS))
def test_networks_and_blocks_have_the_right_shapes(name):
    variant = VARIANTS[name]
    assert variant.build_net(64)(torch.randn(2, 3, 64, 64)).shape == (2, 1000)
    for stage in range(len(DIMS)):
        shape = (2, *stage_shape(stage, 64)[1:])
        assert variant.build_block(stage)(torch.randn(shape)).shape == shape


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_gnconv_channel_splits(order):
    dim = 64
    g = GnConv(dim, order)
    expected = [dim // 2 ** (order - 1 - i) for i in range(order)]
    assert g.dims == expected and expected[-1] == dim
    assert g.proj_in.out_channels == 2 * dim == expected[0] + sum(expected)
    assert g.dwconv.in_channels == g.dwconv.groups == sum(expected)
    assert g.dwconv.kernel_size == (7, 7)
    assert [(pw.in_channels, pw.out_channels) for pw in g.pws] == list(zip(expected, expected[1:]))
    assert (g.proj_out.in_channels, g.proj_out.out_channels) == (dim, dim)


def test_gnconv_computes_the_recursion():
    g = GnConv(16, 3)
    x = torch.randn(1, 16, 8, 8)
    fused = g.proj_in(x)
    p0, stack = fused[:, :4], fused[:, 4:]
    q = g.dwconv(stack) / 3
    p1 = p0 * q[:, :4]
    p2 = g.pws[0](p1) * q[:, 4:12]
    p3 = g.pws[1](p2) * q[:, 12:]
    assert torch.allclose(g(x), g.proj_out(p3), atol=1e-6)


def test_gnconv_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible by 16"):
        gnconv_dims(40, 5)


def test_blocks_are_residual_with_small_layer_scale():
    x = torch.randn(1, 32, 7, 7)
    for block in (HorNetBlock(32, 3), ConvNeXtBlock(32)):
        assert (block(x) - x).abs().max() < 1e-3


def test_equal_cost_quadranet_matches_hornet_macs():
    for stage in range(len(DIMS)):
        shape = stage_shape(stage, 224)
        hornet = count_macs(VARIANTS["hornet"].build_block(stage), shape)
        equal = count_macs(VARIANTS["quadranet-eqcost"].build_block(stage), shape)
        assert abs(equal / hornet - 1) < 0.02
        assert equal_cost_hidden(stage) > 4 * DIMS[stage]  # gnConv costs more than a quadratic dw conv
    shape = (1, 3, 224, 224)
    hornet = count_macs(VARIANTS["hornet"].build_net(224), shape)
    equal = count_macs(VARIANTS["quadranet-eqcost"].build_net(224), shape)
    plain = count_macs(VARIANTS["quadranet"].build_net(224), shape)
    assert abs(equal / hornet - 1) < 0.02
    assert plain < 0.9 * hornet


def test_checkpointing_saves_fewer_bytes_for_backward():
    saved = {
        v: saved_bytes(VARIANTS[v].build_block(0), "stage1", 64, 2) for v in ("quadranet", "quadranet-me", "hornet")
    }
    assert saved["quadranet"] < saved["hornet"]
    assert saved["quadranet-me"] < 0.6 * saved["quadranet"]


def test_variants_must_include_the_reference():
    with pytest.raises(SystemExit):
        parse_args(["--variants", "quadranet,convnext"])
    assert parse_args(["--quick"]).rounds == 3


@pytest.mark.slow
def test_quick_run_writes_json_and_png(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    command = [
        sys.executable,
        str(SCRIPTS / "bench_blocks.py"),
        "--quick",
        "--resolution",
        "64",
        "--units",
        "stage4",
        "--variants",
        "hornet,quadranet-me",
        "--out",
        str(out),
        "--png",
        str(png),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"hornet", "quadranet-me", "quadranet-me+plain"}  # each QuadraNet also without the fused op
    hornet, me = rows["hornet"], rows["quadranet-me"]
    assert rows["quadranet-me+plain"]["train_img_s"] > 0
    assert hornet["unit"] == "stage4" and hornet["shape"] == "2x2x512"
    assert hornet["torch-1t_speedup"] == 1.0 and hornet["rss_step_ratio"] == 1.0
    assert 0 < hornet["ort-1t_p10_ms"] <= hornet["ort-1t_ms"] <= hornet["ort-1t_p90_ms"]
    assert me.get("torch-1t_ms") is None  # training-only: its inference is quadranet's
    assert me["train_img_s"] > 0 and 0 < me["saved_ratio"] < 1
    assert 0 < me["rss_step_bytes"] < me["rss_peak_bytes"]
    assert result["config"]["resolution"] == 64 and result["goal"] == []  # the goal is judged on networks
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_gpu_bench_smoke_runs_on_cpu(tmp_path):
    """bench_blocks_gpu.py's code path (eager only) on the CPU: the figures are relative to HorNet."""
    out, png = tmp_path / "gpu.json", tmp_path / "gpu.png"
    command = [
        sys.executable,
        str(SCRIPTS / "bench_blocks_gpu.py"),
        "--device",
        "cpu",
        "--resolution",
        "32",
        "--batch",
        "2",
        "--rounds",
        "1",
        "--train-rounds",
        "1",
        "--variants",
        "hornet,quadranet,quadranet-me",
        "--compile-variants",
        "",
        "--out",
        str(out),
        "--png",
        str(png),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=HANG_S, cwd=SCRIPTS)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"hornet", "quadranet", "quadranet-me"} and all(r["mode"] == "eager" for r in rows.values())
    assert rows["hornet"]["latency_speedup"] == 1.0 and rows["hornet"]["train_ratio"] == 1.0
    assert rows["quadranet"]["latency_ms"] > 0 and rows["quadranet-me"]["train_img_s"] > 0
    assert rows["quadranet-me"].get("latency_ms") is None  # training only
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
