import json
import random
import sys
from dataclasses import replace

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch
import yaml
from builders import table_of

from quadnas._export import ExportSource, build_model, export_model, finetune, load, read_sidecar, verify_latency
from quadnas._export.card import render_model_card, write_model_card
from quadnas.cli import main
from quadnas.data import load_dataset
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.header import Calibration, Measurement
from quadnas.latency.host import Host
from quadnas.latency.measure.backends import get_backend
from quadnas.latency.table import LatencyTable
from quadnas.nn import QuadraNet
from quadnas.nn.stats import model_stats
from quadnas.record import DeviceRecord
from quadnas.space import SearchSpace
from quadnas.supernet import Supernet
from quadnas.supernet.checkpoint import DatasetInfo, checkpoint_hash, checkpoint_state, save_checkpoint
from quadnas.supernet.evaluate import accuracy
from quadnas.supernet.train import TrainConfig

FORMATS = ("torch", "onnx", "openvino")
ARCH = "k3e2-id-k5e4-k7e2-id-k3e4"  # an arch of the tiny space
RANDOM_TINY_EXPORT = ("export", "--arch", ARCH, "--space", "tiny", "--init", "random")


def wake_blocks(model: torch.nn.Module) -> torch.nn.Module:
    """Layer scales start at 1e-6; raise them so every block shapes the output parity is checked on."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "gamma" in name:
                p.uniform_(0.2, 0.6)
    return model


def random_source(space: SearchSpace, seed: int) -> ExportSource:
    arch = space.sample(random.Random(seed))
    source = build_model(str(arch), space=space, init="random", seed=seed)
    wake_blocks(source.model)
    return source


def reference(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def check_written(result, model: torch.nn.Module, x: np.ndarray) -> None:
    """Run the written file in its own runtime (and an ONNX file also in OpenVINO) on `x`."""
    expected = reference(model, x)
    if result.format == "torch":
        outputs = [reference(load(result.path), x)]
    elif result.format == "onnx":
        graph = onnx.load(str(result.path))
        assert graph.opset_import[0].version >= 17
        assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
        session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
        compiled = ov.Core().compile_model(str(result.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outputs = [session.run(None, {"input": x})[0], compiled(x)[0]]
    else:
        assert result.path.with_suffix(".bin").is_file()
        compiled = ov.Core().compile_model(str(result.path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outputs = [compiled(x)[0]]
    for got in outputs:
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_tiny_space(fmt, tiny_space, tmp_path):
    for seed in range(3):
        source = random_source(tiny_space, seed)
        result = export_model(source, fmt, tmp_path / f"model{seed}")
        assert result.max_abs_diff <= 1e-4 and set(result.parity) == {1, 3}
        assert all(p.is_file() for p in result.files)
        if seed == 0:  # the export checked itself; run one file again independently
            x = np.random.default_rng(seed).standard_normal((2, 3, 64, 64), dtype=np.float32)
            check_written(result, source.model, x)
        sidecar = read_sidecar(result.path)
        assert sidecar["arch"] == str(source.arch) and sidecar["format"] == fmt
        assert sidecar["input"]["shape"] == ["batch", 3, 64, 64]


@pytest.fixture(scope="module")
def default_source():
    space = SearchSpace.load()
    rng = random.Random(7)
    # mostly identity blocks keep the 18-block space quick to build and export
    arch = space.parse("-".join(rng.choice(["id", "id", "k3e2", "k7e4", "k5e2"]) for _ in range(space.num_blocks)))
    source = build_model(str(arch), space=space, init="random")
    wake_blocks(source.model)
    return source


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_default_space_at_small_resolution(fmt, default_source, tmp_path):
    result = export_model(default_source, fmt, tmp_path / "model", resolution=64)
    assert result.resolution == 64 and result.max_abs_diff <= 1e-4
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 64), dtype=np.float32)
    check_written(result, default_source.model, x)
    assert "not the deployment resolution (224 px)" in read_sidecar(result.path)["resolution_note"]


def test_random_init_without_checkpoint_via_cli(tmp_path, tiny_space):
    out = tmp_path / "net.onnx"
    assert main([*RANDOM_TINY_EXPORT, "--out", str(out)]) == 0
    sidecar = read_sidecar(out)
    assert sidecar["weights"] == "random" and sidecar["checkpoint"] is None and sidecar["accuracy"] is None
    assert sidecar["num_classes"] == tiny_space.config.num_classes  # the head the latency tables describe
    card = (tmp_path / "net.onnx.md").read_text()
    assert ARCH in card and "freshly initialised" in card
    other = tmp_path / "other.pt"  # a second export in the same folder keeps its own card
    assert (
        main(
            [
                "export",
                "--arch",
                "k7e4-k7e4-id-id-k3e2-k3e2",
                "--space",
                "tiny",
                "--init",
                "random",
                "--out",
                str(other),
            ]
        )
        == 0
    )
    assert (tmp_path / "net.onnx.md").read_text() == card and (tmp_path / "other.pt.md").is_file()


def test_two_formats_of_one_name_keep_their_own_sidecars_and_cards(tmp_path, tiny_space):
    base = [*RANDOM_TINY_EXPORT]
    assert main(base + ["--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    assert main(base + ["--format", "torch", "--out", str(tmp_path / "m.pt")]) == 0
    assert main(base + ["--format", "openvino", "--out", str(tmp_path / "m.xml")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.bin",
        "m.onnx",
        "m.onnx.md",
        "m.onnx.yaml",
        "m.pt",
        "m.pt.md",
        "m.pt.yaml",
        "m.xml",
        "m.xml.md",
        "m.xml.yaml",
    ]
    for fmt, name in (("onnx", "m.onnx"), ("torch", "m.pt"), ("openvino", "m.xml")):
        assert read_sidecar(tmp_path / name)["format"] == fmt and read_sidecar(tmp_path / name)["file"] == name
        assert f"as **{fmt}** (`{name}`)" in (tmp_path / f"{name}.md").read_text()
    model = load(tmp_path / "m.pt")
    assert str(model.arch) == ARCH and load(tmp_path / "m.pt.yaml").arch == model.arch
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    assert np.abs(session.run(None, {"input": x})[0] - reference(model, x)).max() <= 1e-4  # one seed, one network


def test_an_old_style_sidecar_is_read_for_its_own_file_only(tmp_path, tiny_space):
    result = export_model(build_model(ARCH, space=tiny_space, init="random"), "torch", tmp_path / "m.pt")
    (tmp_path / "m.pt.yaml").rename(tmp_path / "m.yaml")  # as quadnas wrote it before sidecars took the whole name
    assert str(load(result.path).arch) == ARCH and read_sidecar(tmp_path / "m.yaml")["file"] == "m.pt"
    (tmp_path / "m.onnx").write_bytes(b"")  # m.yaml belongs to m.pt, not to m.onnx
    with pytest.raises(QuadnasError, match="m.onnx.yaml does not exist"):
        read_sidecar(tmp_path / "m.onnx")


def test_card_never_overwrites_other_markdown(tmp_path, capsys):
    notes = tmp_path / "notes.onnx.md"
    notes.write_text("# my notes\n")
    out = tmp_path / "notes.onnx"
    assert main([*RANDOM_TINY_EXPORT, "--out", str(out)]) == 2
    assert "not a quadnas model card" in capsys.readouterr().err
    assert notes.read_text() == "# my notes\n" and not out.exists()


def test_random_init_is_seeded(tiny_space):
    a, b, c = (build_model(ARCH, space=tiny_space, init="random", seed=seed).model for seed in (3, 3, 4))
    assert torch.equal(a.stem[0].weight, b.stem[0].weight)
    assert not torch.equal(a.stem[0].weight, c.stem[0].weight)


# ---- from a supernet checkpoint -------------------------------------------
def digits_at(resolution: int):
    return load_dataset("digits", resolution)


@pytest.fixture(scope="module")
def digits():
    return digits_at(32)


@pytest.fixture
def trained(tiny_space, digits, tmp_path):
    """A (wakened) tiny supernet saved as a checkpoint, and a best.yaml that points at it."""
    supernet = wake_blocks(Supernet(tiny_space, digits.num_classes)).eval()
    path = tmp_path / "supernet.pt"
    config = TrainConfig(epochs=1, resolution=32).model_dump()
    save_checkpoint(path, checkpoint_state(supernet, DatasetInfo.of(digits), config, 1, {}))
    arch = tiny_space.sample(random.Random(11))
    record = {
        "arch": str(arch),
        "accuracy": 0.875,
        "latency_ms": 1.5,
        "budget_ms": 2.0,
        "device": "tiny-test",
        "space": {"name": tiny_space.name, "path": tiny_space.source, "fingerprint": tiny_space.fingerprint()},
        "data": "digits",
        "resolution": 32,
        "supernet": {"checkpoint": str(path), "sha256_16": checkpoint_hash(path)},
    }
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump(record))
    return supernet, arch, path, best


def test_export_from_checkpoint_matches_supernet(trained, tmp_path):
    supernet, arch, _, best = trained
    source = build_model(best)
    assert source.weights == "inherited" and source.accuracy == 0.875
    assert source.classes == tuple(str(d) for d in range(10))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = supernet(x, arch)
    for fmt in FORMATS:
        result = export_model(source, fmt, tmp_path / "out" / f"model-{fmt}")
        check_written(result, source.model, x.numpy())
    with torch.no_grad():
        assert torch.allclose(load(tmp_path / "out" / "model-torch.pt")(x), expected, atol=1e-5)
    sidecar = read_sidecar(tmp_path / "out" / "model-torch.pt")
    assert sidecar["accuracy"] == 0.875 and "validation split of digits at 32 px" in sidecar["accuracy_on"]
    assert sidecar["trained_resolution"] == 32 and sidecar["normalisation"]["mean"]
    assert sidecar["checkpoint"]["sha256_16"] == source.checkpoint_sha


def test_model_files_carry_what_a_deployment_needs(trained, tmp_path):
    source = build_model(trained[3])
    onnx_file = export_model(source, "onnx", tmp_path / "m.onnx").path
    carried = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).get_modelmeta()
    meta = carried.custom_metadata_map
    assert meta["quadnas_arch"] == str(source.arch) and meta["labels"] == " ".join(str(d) for d in range(10))
    assert json.loads(meta["quadnas_classes"]) == list(source.classes)
    assert (
        json.loads(meta["quadnas_input"])["layout"] == "NCHW" and json.loads(meta["quadnas_input"])["resolution"] == 64
    )
    assert [float(v) for v in meta["mean_values"].split()] == pytest.approx([255 * m for m in source.mean], rel=1e-5)
    predicted = json.loads(meta["quadnas_predicted_latency"])
    assert predicted == [{"device": "tiny-test", "predicted_latency_ms": 1.5, "budget_ms": 2.0}]
    ir = ov.Core().read_model(str(export_model(source, "openvino", tmp_path / "m.xml").path))
    assert ir.get_rt_info(["model_info", "quadnas_arch"]).astype(str) == str(source.arch)
    assert ir.get_rt_info(["model_info", "model_type"]).astype(str) == "Classification"


def test_fp16_ir_halves_the_weights_within_its_tolerance(trained, tmp_path):
    source = build_model(trained[3])
    fp32 = export_model(source, "openvino", tmp_path / "fp32.xml")
    fp16 = export_model(source, "openvino", tmp_path / "fp16.xml", precision="fp16")
    assert fp16.max_abs_diff <= 1e-2 and fp16.options.precision == "fp16"
    size = {r.options.precision: r.path.with_suffix(".bin").stat().st_size for r in (fp32, fp16)}
    assert size["fp16"] < 0.6 * size["fp32"]
    assert read_sidecar(fp16.path)["file_options"] == {"onnx_opset": 17, "weights_precision": "fp16"}
    assert read_sidecar(fp16.path)["parity"]["tolerance_of_logit_scale"] == 1e-2


@pytest.mark.parametrize("opset", [13, 20])
def test_other_opsets_export_exactly(opset, tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    wake_blocks(source.model)
    result = export_model(source, "onnx", tmp_path / "m.onnx", opset=opset)
    assert onnx.load(str(result.path)).opset_import[0].version == opset and result.max_abs_diff <= 1e-4


@pytest.mark.parametrize(
    "fmt, options, message",
    [
        ("onnx", {"precision": "fp16"}, "--precision fp16 compresses OpenVINO IR weights"),
        ("torch", {"precision": "int8"}, "--precision int8 quantizes ONNX, OpenVINO and LiteRT"),
        ("onnx", {"precision": "int4"}, "--precision int4 is not supported: use one of fp32, fp16, int8"),
        ("torch", {"opset": 18}, "--opset applies to ONNX and OpenVINO"),
        ("onnx", {"opset": 9}, "--opset 9 is not supported: use 13..21"),
    ],
)
def test_file_options_that_do_not_apply_are_one_line_errors(fmt, options, message, tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    with pytest.raises(QuadnasError, match=message):
        export_model(source, fmt, tmp_path / "m", **options)


def test_sidecar_says_where_the_weights_were_trained(trained, tmp_path):
    source = build_model(trained[3])
    result = export_model(source, "onnx", tmp_path / "m.onnx")
    assert result.resolution == 64
    note = read_sidecar(result.path)["resolution_note"]
    assert "trained at 32 px, exported at 64 px" in note and "fully convolutional" in note
    result = export_model(source, "onnx", tmp_path / "m32.onnx", resolution=32)
    assert read_sidecar(result.path)["resolution_note"].startswith("trained and exported at 32 px")


def test_arch_with_explicit_checkpoint(trained, tiny_space):
    supernet, arch, path, _ = trained
    source = build_model(str(arch), space="tiny", checkpoint=path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(source.model(x), supernet(x, arch), atol=1e-5)
    assert source.accuracy is None  # only a search result says how accurate an arch is


def test_finetune_changes_weights_and_measures_accuracy(trained):
    source = build_model(trained[3])
    before = source.model.stem[0].weight.clone()
    tuned = finetune(source, epochs=1, batch_size=256)
    assert tuned.weights == "fine-tuned" and 0.0 <= tuned.accuracy <= 1.0
    assert "fine-tuning" in tuned.accuracy_on
    assert not torch.equal(before, tuned.model.stem[0].weight)
    assert torch.equal(before, source.model.stem[0].weight)  # the inherited network is left as it was


def test_an_arch_ranked_by_a_proxy_supernet_is_trained_at_full_width_before_export(
    tiny_space, digits, tmp_path, capsys
):
    proxy = wake_blocks(Supernet(tiny_space, digits.num_classes, width=0.5)).eval()
    path = tmp_path / "proxy.pt"
    config = TrainConfig(epochs=1, resolution=32, width=0.5).model_dump()
    save_checkpoint(path, checkpoint_state(proxy, DatasetInfo.of(digits), config, 1, {}))
    arch = tiny_space.largest()
    source = build_model(str(arch), space="tiny", checkpoint=path)
    assert source.weights == "untrained" and source.model.stem[0].weight.shape[0] == tiny_space.dims[0]
    error = error_of(
        [
            "export",
            str(arch),
            "--space",
            "tiny",
            "--checkpoint",
            str(path),
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.onnx"),
        ],
        capsys,
    )
    assert "width-0.5 proxy" in error and "--finetune-epochs" in error
    trained = finetune(source, epochs=1, batch_size=256)
    assert trained.weights == "trained" and "training from scratch" in trained.accuracy_on
    assert trained.trained_resolution == 32 and trained.checkpoint_sha == checkpoint_hash(path)
    result = export_model(trained, "torch", tmp_path / "m.pt")
    card = render_model_card(trained, result, predictions=[])
    assert "trained stand-alone from scratch" in card and "random weights" not in card


def test_model_card_content(trained, tmp_path, tiny_space, monkeypatch):
    tables = tmp_path / "tables"
    monkeypatch.setenv("QUADNAS_TABLES", str(tables))
    local_table(tables, tiny_space, 0.5, device="bench-cpu")
    (tables / "broken.csv").write_text("# device: x\nnot a table\n")
    source = build_model(trained[3])
    result = export_model(source, "torch", tmp_path / "m.pt")
    card = write_model_card(source, result).read_text()
    params, macs = model_stats(source.model, (1, 3, 64, 64))
    assert card.startswith(f"# QuadraNet `{source.arch}`")
    assert f"{params:,}" in card and f"{macs:,}" in card
    assert "0.8750 top-1 on the validation split of digits" in card
    assert "predicted 1.5 ms on `tiny-test` against a budget of 2.0 ms" in card
    assert f"limit {result.parity_bound:.2g}, 0.001 of the logits' scale" in card
    assert "quadnas.load" in card
    rows = len(tiny_space.op_specs(source.arch))
    assert "| table | bench-cpu | onnxruntime" in card and f"| measured | {rows * 0.5:.2f} ms |" in card
    assert "5.0% max (4 networks)" in card


def test_macs_count_convolutions(tiny_space):
    model = QuadraNet(tiny_space, tiny_space.parse("id-id-id-id-id-id"))
    params, macs = model_stats(model, (1, 3, 64, 64))
    stem = 16 * 16 * 16 * (3 * 4 * 4)  # 16x16 outputs, 16 channels, 4x4x3 patch
    downsamples = 8 * 8 * 24 * 16 * 4 + 4 * 4 * 32 * 24 * 4 + 2 * 2 * 48 * 32 * 4
    assert macs == stem + downsamples + 48 * 10
    assert params == sum(p.numel() for p in model.parameters())


# ---- latency verification ---------------------------------------------------
def local_table(directory, space: SearchSpace, ms: float, device: str | None = None, host: Host | None = None) -> str:
    """A table claiming to be measured here (or on `device`, or on `host`), every row `ms`."""
    here = get_backend("onnxruntime", None, 1).describe()
    host = host or Host.current()
    table = table_of(
        space,
        lambda _: ms,
        device=device or here["device"],
        aliases=[],
        backend_version=here["backend_version"],
        method="test rows",
        calibration=Calibration(mape_pct=3.0, max_err_pct=5.0, networks=4),
        host=host,
        host_fingerprint=host.fingerprint,
    )
    return str(table.write(directory / "table.csv"))


def test_verify_latency_reports_measured_predicted_budget(tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    for fmt in ("onnx", "torch"):
        result = export_model(source, fmt, tmp_path / f"m-{fmt}")
        check = verify_latency(
            source, result, device=local_table(tmp_path, tiny_space, 1.0), budget=Budget(30.0), rounds=3
        )
        assert check.measured_ms > 0 and check.runs >= 3
        assert check.predicted_ms == pytest.approx(len(tiny_space.op_specs(source.arch)) * 1.0)
        assert check.same_machine and check.tolerance_pct == 5.0 and check.limit == Budget(31.5)
        assert check.passed is (check.measured_ms <= 31.5)
        assert ("pinned" in check.measured_what) == (fmt == "onnx")


def verify_args(tmp_path, table: str) -> list[str]:
    """`quadnas export` of a random-init tiny arch to ONNX, timed 3 rounds against `table`."""
    return [
        *RANDOM_TINY_EXPORT,
        "--out",
        str(tmp_path / "m.onnx"),
        "--verify-latency",
        "--device",
        table,
        "--rounds",
        "3",
    ]


def test_verify_latency_gate_exit_codes(tmp_path, tiny_space, capsys):
    table = local_table(tmp_path, tiny_space, 1e-6)
    base = verify_args(tmp_path, table)
    assert main(base + ["--budget", "1us"]) == 1
    assert "over budget" in capsys.readouterr().err
    assert main(base + ["--budget", "1us", "--warn-only"]) == 0
    other = local_table(tmp_path, tiny_space, 1e-6, device="some other CPU")
    assert main(base[:-4] + ["--device", other, "--rounds", "3", "--budget", "1us"]) == 0  # not measured here
    assert "no budget gate" in capsys.readouterr().out


def test_verify_against_another_hosts_table_times_here_and_never_gates(tmp_path, tiny_space, capsys):
    """Same CPU name, runtime, threads and clock as here; only the host record says it is another machine."""
    elsewhere = Host(name="Imaginary CPU 9000", family="99", model="99", features=("avx2",), logical_cores=10_000)
    table = local_table(tmp_path, tiny_space, 1e-6, host=elsewhere)
    args = [*verify_args(tmp_path, table), "--budget", "1us"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "not gated" in out and "timed on this host" in out and "Imaginary CPU 9000" in out
    source = build_model(ARCH, space=tiny_space, init="random")
    result = export_model(source, "onnx", tmp_path / "m.onnx")
    check = verify_latency(source, result, device=table, budget=Budget(1e-3), rounds=2)
    assert check.measured_ms > 0 and not check.same_machine and check.passed is None
    unrecorded = LatencyTable.read(table)
    unrecorded.meta = unrecorded.meta.model_copy(update={"host": None, "host_fingerprint": None})
    check = verify_latency(
        source, result, device=str(unrecorded.write(tmp_path / "old.csv")), budget=Budget(1e-3), rounds=2
    )
    assert check.passed is None and "host not recorded" in check.note


def test_verify_needs_the_tables_resolution(tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    result = export_model(source, "onnx", tmp_path / "m.onnx", resolution=32)
    with pytest.raises(QuadnasError, match="export at 64 px"):
        verify_latency(source, result, device=local_table(tmp_path, tiny_space, 1.0), rounds=1)


def test_card_names_every_device_of_a_search(trained):
    source = build_model(trained[3])
    assert source.record is not None
    devices = [
        DeviceRecord(device="vpu", latency_ms=21.0, budget_ms=30.0),
        DeviceRecord(device="cpu", latency_ms=250.0, budget_ms=300.0),
    ]
    card = render_model_card(
        replace(source, record=source.record.model_copy(update={"devices": devices})),
        export_model(source, "torch", trained[2].with_name("m.pt")),
        predictions=[],
    )
    assert (
        "predicted 21.0 ms on `vpu` against a budget of 30.0 ms; 250.0 ms on `cpu` against a budget of 300.0 ms."
        in card
    )


def test_card_shows_measured_latency(tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    result = export_model(source, "onnx", tmp_path / "m.onnx")
    check = verify_latency(source, result, device=local_table(tmp_path, tiny_space, 1.0), budget=Budget(30.0), rounds=2)
    card = render_model_card(source, result, check, predictions=[])
    verdict = "within" if check.passed else "OVER"  # the speed of this machine decides which (not asserted)
    assert "## Measured latency" in card and "budget: 30 ms" in card and verdict in card


# ---- mistakes -----------------------------------------------------------------
def error_of(args, capsys) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err
    return err


def test_unknown_format(tmp_path, capsys):
    err = error_of(
        [
            *RANDOM_TINY_EXPORT,
            "--format",
            "tflite",
            "--out",
            str(tmp_path / "m.tflite"),
        ],
        capsys,
    )
    assert "unknown format 'tflite'" in err


def test_out_naming_a_folder_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "models.onnx").mkdir()
    for out in (tmp_path, tmp_path / "models.onnx"):
        err = error_of(["export", "no-such-result.yaml", "--format", "onnx", "--out", str(out)], capsys)
        assert "is a folder: give a file path" in err


def test_suffix_must_fit_format(tmp_path, capsys):
    err = error_of(
        [
            *RANDOM_TINY_EXPORT,
            "--format",
            "onnx",
            "--out",
            str(tmp_path / "m.pt"),
        ],
        capsys,
    )
    assert "name it *.onnx" in err


def test_missing_checkpoint(tmp_path, capsys):
    base = ["export", "--arch", ARCH, "--space", "tiny", "--out", str(tmp_path / "m.onnx")]
    assert "--init random" in error_of(base, capsys)
    assert "does not exist" in error_of(base + ["--checkpoint", str(tmp_path / "nope.pt")], capsys)


def test_checkpoint_of_another_space(trained, tmp_path, capsys, tiny_space):
    other = tmp_path / "tiny12.yaml"
    other.write_text(yaml.safe_dump({**tiny_space.config.model_dump(), "name": "tiny12", "num_classes": 12}))
    err = error_of(
        [
            "export",
            "--arch",
            str(trained[1]),
            "--space",
            str(other),
            "--checkpoint",
            str(trained[2]),
            "--out",
            str(tmp_path / "m.onnx"),
        ],
        capsys,
    )
    assert "was trained for space 'tiny'" in err


def test_changed_checkpoint_is_refused(trained, tmp_path, capsys, tiny_space):
    supernet, _, path, best = trained
    save_checkpoint(
        path,
        checkpoint_state(
            wake_blocks(supernet), DatasetInfo.of(load_dataset("digits", 32)), TrainConfig(epochs=2).model_dump(), 2, {}
        ),
    )
    assert "changed since the search" in error_of(["export", str(best), "--out", str(tmp_path / "m.pt")], capsys)


def test_arch_of_another_space(tmp_path, capsys):
    err = error_of(["export", "--arch", ARCH, "--init", "random", "--out", str(tmp_path / "m.onnx")], capsys)
    assert "space 'quadranet-t' has 18 searchable blocks" in err


def test_space_changed_since_search(trained, tmp_path, capsys, tiny_space):
    record = yaml.safe_load(trained[3].read_text())
    record["space"]["fingerprint"] = "0" * 16
    trained[3].write_text(yaml.safe_dump(record))
    assert "the space file changed" in error_of(["export", str(trained[3]), "--out", str(tmp_path / "m.pt")], capsys)


def test_openvino_not_installed(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    err = error_of([*RANDOM_TINY_EXPORT, "--out", str(tmp_path / "m.xml")], capsys)
    assert "needs the openvino package" in err and "pip install" in err


def test_never_overwrites_the_search_result_or_other_yaml(trained, tmp_path, capsys):
    best = trained[3]
    before = best.read_text()
    assert main(["export", str(best), "--out", str(best.with_suffix(".pt"))]) == 0  # sidecar best.pt.yaml
    assert best.read_text() == before and read_sidecar(best.with_suffix(".pt"))["format"] == "torch"
    mine = tmp_path / "m.onnx.yaml"
    mine.write_text("notes: mine\n")
    assert "would overwrite" in error_of(["export", str(best), "--out", str(tmp_path / "m.onnx")], capsys)
    assert mine.read_text() == "notes: mine\n"


def test_result_and_arch_together(trained, tmp_path, capsys):
    err = error_of(["export", str(trained[3]), "--arch", ARCH, "--out", str(tmp_path / "m.pt")], capsys)
    assert "either a search result" in err


def test_flags_that_need_another_flag(tmp_path, capsys, trained):
    base = [*RANDOM_TINY_EXPORT, "--out", str(tmp_path / "m.onnx")]
    assert "only apply with --verify-latency" in error_of(base + ["--budget", "3ms"], capsys)
    assert "only applies to fine-tuning" in error_of(base + ["--data", "digits"], capsys)
    assert "uses no checkpoint" in error_of(base + ["--checkpoint", str(trained[2])], capsys)


def test_load_refuses_other_formats(tmp_path, tiny_space):
    result = export_model(build_model(ARCH, space=tiny_space, init="random"), "onnx", tmp_path / "m.onnx")
    with pytest.raises(QuadnasError, match="rebuilds torch exports"):
        load(result.path)


def test_verify_uses_a_torch_tables_gpu_only_where_one_runs(tmp_path, tiny_space, monkeypatch):
    from quadnas._export.verify import _torch_target

    table = LatencyTable.read(local_table(tmp_path, tiny_space, 1.0))
    table.meta = table.meta.model_copy(update={"backend": "torch", "measurement": Measurement(target="cuda")})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _torch_target(table, "torch") is None  # measured on a GPU, verified here on the CPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _torch_target(table, "torch") == "cuda"
    assert _torch_target(table, "onnxruntime") is None and _torch_target(None, "torch") is None


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_files_are_quantized_and_checked_by_accuracy(fmt, trained, tmp_path):
    """Learned at 32 px, written at 64 px: the file is at 64 px, its accuracy judged at 32 px (a twin file)."""
    source = build_model(trained[3])
    result = export_model(source, fmt, tmp_path / "new" / f"m-{fmt}", precision="int8")
    check = result.int8
    assert source.trained_resolution == 32 and result.input_shape[-1] == 64
    assert check is not None and check.calibration_images == 300 and "INT8" in result.runtime
    assert "at 32 px" in check.on and "twin INT8 file at 32 px" in check.on
    assert 0.0 <= check.int8_accuracy <= 1.0 and check.fp32_accuracy == pytest.approx(
        accuracy(source.model, digits_at(32).val)
    )
    if fmt == "onnx":
        ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    else:
        ops = {op.get_type_name() for op in ov.Core().read_model(str(result.path)).get_ops()}
        assert "FakeQuantize" in ops
    parity = read_sidecar(result.path)["parity"]
    assert parity["int8_accuracy"] == check.int8_accuracy and parity["max_logit_diff"] == check.max_logit_diff
    assert f"accuracy {check.int8_accuracy:.4f} vs FP32 {check.fp32_accuracy:.4f}" in render_model_card(
        source, result, predictions=[]
    )


def test_int8_needs_the_data_the_network_learned_from(tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    with pytest.raises(QuadnasError, match="calibrates on the data the network learned from"):
        export_model(source, "onnx", tmp_path / "m.onnx", precision="int8")


def test_timing_with_torch_leaves_the_process_thread_count_alone(tmp_path, tiny_space):
    source = build_model(ARCH, space=tiny_space, init="random")
    result = export_model(source, "torch", tmp_path / "m.pt")
    before = torch.get_num_threads()
    check = verify_latency(source, result, backend="torch", threads=before + 1, rounds=1)
    assert check.backend["threads"] == before + 1 and torch.get_num_threads() == before
