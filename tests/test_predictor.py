"""LatencyPredictor, device resolution and the `predict` / `tables` commands."""

from __future__ import annotations

import io
import itertools
import json
import logging
import random
import re
from pathlib import Path

import numpy as np
import pytest
from builders import random_table, table_meta
from rich.console import Console

import quadnas.cli.tables
from quadnas.cli import main
from quadnas.cli.common import console
from quadnas.errors import QuadnasError
from quadnas.latency.devices import (
    SHIPPED_TABLES_DIR,
    list_tables,
    load_device_table,
    resolve_device,
    table_files,
    user_tables_dir,
)
from quadnas.latency.header import Calibration
from quadnas.latency.host import Host
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.space import Arch, SearchSpace


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch) -> Path:
    """An empty user table dir, so a developer's own tables never leak into the tests."""
    path = tmp_path / "user-tables"
    monkeypatch.setenv("QUADNAS_TABLES", str(path))
    return path


@pytest.fixture
def predictor(tiny_space) -> LatencyPredictor:
    return LatencyPredictor(random_table(tiny_space), tiny_space)


def all_indices(space: SearchSpace) -> np.ndarray:
    return np.array(list(itertools.product(range(len(space.choices)), repeat=space.num_blocks)))


# ---- predictor ------------------------------------------------------------------
def test_predict_is_calibrated_sum_of_rows(predictor, tiny_space):
    table = predictor.table
    for arch in [tiny_space.sample(random.Random(i)) for i in range(20)] + [tiny_space.largest()]:
        raw = table.lookup(tiny_space.op_specs(arch)).sum()
        assert predictor.raw_sum(arch) == pytest.approx(raw)
        assert predictor.predict(arch) == pytest.approx(1.1 * raw + 0.5)


def test_identity_blocks_cost_nothing(predictor, tiny_space):
    fixed = [s for s in tiny_space.op_specs(tiny_space.smallest())]
    assert all(s.op != "quadra_block" for s in fixed)
    assert predictor.raw_sum(tiny_space.smallest()) == pytest.approx(predictor.table.lookup(fixed).sum())


def test_predict_many_equals_predict(predictor, tiny_space):
    archs = [tiny_space.sample(random.Random(i)) for i in range(50)]
    expected = [predictor.predict(a) for a in archs]
    np.testing.assert_allclose(predictor.predict_many(archs), expected)
    index = {c: j for j, c in enumerate(tiny_space.choices)}
    idx = np.array([[index[b] for b in a.blocks] for a in archs])
    np.testing.assert_allclose(predictor.predict_many(idx), expected)
    assert predictor.predict_many([]).shape == (0,)


def test_fastest_slowest_are_exact_extremes(predictor, tiny_space):
    every = predictor.predict_many(all_indices(tiny_space))  # brute force: 7**6 archs
    (fast, fast_ms), (slow, slow_ms) = predictor.fastest(), predictor.slowest()
    assert fast_ms == pytest.approx(every.min()) and slow_ms == pytest.approx(every.max())
    assert predictor.predict(fast) == pytest.approx(fast_ms) and predictor.predict(slow) == pytest.approx(slow_ms)


def test_breakdown_sums_to_prediction(predictor, tiny_space):
    arch = tiny_space.parse("k3e2-k5e4-id-k7e2-id-k3e4")
    frame = predictor.breakdown(arch)
    specs = tiny_space.op_specs(arch)
    assert frame.op.tolist() == [str(s) for s in specs] + ["calibration offset"]
    assert frame.ms.sum() == pytest.approx(predictor.predict(arch))
    assert frame.share.sum() == pytest.approx(1.0)


def test_bad_archs(predictor, tiny_space):
    with pytest.raises(QuadnasError, match="6 blocks"):
        predictor.predict(Arch(tiny_space.largest().blocks[:3]))
    with pytest.raises(QuadnasError, match="k9e2 is not in space"):
        predictor.predict(Arch((type(tiny_space.choices[0])(9, 2),) * 6))


def test_table_must_cover_the_space(tiny_space):
    specs = tiny_space.all_op_specs()
    with pytest.raises(QuadnasError) as err:
        LatencyPredictor(random_table(tiny_space, specs[:-2]), tiny_space)
    assert str(specs[-1]) in str(err.value) and "quadnas profile --space" in str(err.value)
    with pytest.raises(QuadnasError, match="is for resolution 128"):
        LatencyPredictor(random_table(tiny_space, resolution=128), tiny_space)


def test_predict_many_on_a_large_batch_of_the_default_space(default_space):
    """20,000 archs in one call, as a search scores them; no speed is asserted here (tests run on machines of
    any speed): scripts/bench_predictor_speed.py measures throughput (docs/benchmarks.md)."""
    table = LatencyTable.read(resolve_device("cpu"))
    predictor = LatencyPredictor(table, default_space)
    rng = random.Random(0)
    archs = [default_space.sample(rng) for _ in range(20_000)]
    many = predictor.predict_many(archs)
    assert many.shape == (20_000,) and np.isfinite(many).all()
    index = {c: j for j, c in enumerate(default_space.choices)}
    np.testing.assert_allclose(predictor.predict_many(np.array([[index[b] for b in a.blocks] for a in archs])), many)
    for i in range(0, 20_000, 997):  # spot checks against the table's rows
        raw = table.lookup(default_space.op_specs(archs[i])).sum()
        assert many[i] == pytest.approx(predictor.calibration.apply(raw))


# ---- devices ---------------------------------------------------------------------
def test_shipped_devices_by_alias_name_and_path():
    assert resolve_device("cpu") == SHIPPED_TABLES_DIR / "cortex-a76.csv"
    assert resolve_device("vpu") == SHIPPED_TABLES_DIR / "myriad-x.csv"
    assert resolve_device("gpu") == SHIPPED_TABLES_DIR / "a100.csv"
    assert resolve_device("myriad-x") == SHIPPED_TABLES_DIR / "myriad-x.csv"
    path = SHIPPED_TABLES_DIR / "a100.csv"
    assert resolve_device(str(path)) == path


def test_unknown_device_lists_known_and_says_how(tmp_path):
    with pytest.raises(QuadnasError) as err:
        resolve_device("toaster")
    message = str(err.value)
    assert "cortex-a76 (cpu)" in message and "quadnas profile --name toaster" in message
    with pytest.raises(QuadnasError, match="does not exist"):
        resolve_device(str(tmp_path / "missing.csv"))


def test_user_tables_found_and_override_shipped(user_dir, tiny_space):
    assert user_tables_dir() == user_dir
    random_table(tiny_space, device="laptop", aliases=["mine"]).write(user_dir / "my-laptop.csv")
    assert resolve_device("my-laptop") == user_dir / "my-laptop.csv"
    assert resolve_device("mine") == user_dir / "my-laptop.csv"
    random_table(tiny_space, device="real-a76", aliases=["cpu"]).write(user_dir / "cortex-a76.csv")
    assert resolve_device("cortex-a76") == user_dir / "cortex-a76.csv"
    assert resolve_device("cpu") == user_dir / "cortex-a76.csv"
    names = [t.name for t in list_tables()]
    assert names.count("cortex-a76") == 1 and "my-laptop" in names and "a100" in names


def test_default_user_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("QUADNAS_TABLES")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_tables_dir() == tmp_path / ".quadnas" / "latency_tables"


@pytest.fixture
def warnings_logged() -> list[str]:
    """What the library warns on the `quadnas` logger during the test."""
    messages: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("quadnas")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def test_corrupted_user_table_is_skipped_with_a_warning_naming_it(user_dir, tiny_space, warnings_logged):
    path = random_table(tiny_space).write(user_dir / "broken.csv")
    path.write_text(path.read_text().replace("# provenance: measured", "# provenance: hearsay"))
    assert "broken" not in [t.name for t in list_tables()] and "myriad-x" in [t.name for t in list_tables()]
    assert any("broken.csv" in m and "provenance" in m for m in warnings_logged)
    (broken,) = [f for f in table_files() if f.path == path]
    assert broken.table is None and "provenance" in broken.error


JUNK = {
    "binary junk": bytes(range(256)) * 4,
    "wrong encoding": "# device: café\n# aliases: [vpu]\n".encode("latin-1"),
    "a csv that is not a table": b"name,value\nvpu,1\n",
}


@pytest.mark.parametrize("content", JUNK.values(), ids=JUNK.keys())
def test_an_unreadable_user_file_affects_only_its_own_name(content, user_dir, warnings_logged, capsys):
    user_dir.mkdir(parents=True)
    (user_dir / "junk.csv").write_bytes(content)
    assert resolve_device("vpu") == SHIPPED_TABLES_DIR / "myriad-x.csv"  # alias lookup reads every header
    assert load_device_table("myriad-x").name == "myriad-x"
    assert any("junk.csv" in m for m in warnings_logged)
    code, out, err = run_cli(capsys, "predict", "--device", "vpu", "--range")
    assert code == 0 and "fastest" in out
    code, out, _ = run_cli(capsys, "tables")
    assert code == 0 and "unreadable junk.csv (user)" in out and "myriad-x" in out
    code, _, err = run_cli(capsys, "predict", "--device", "junk", "--range")
    assert code == 2 and "junk.csv" in err and len(err.strip().splitlines()) == 1


# ---- command line ------------------------------------------------------------------
def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_predict_latency_line(capsys, default_space):
    arch = "-".join(["k3e2"] * 3 + ["k5e4"] * 3 + ["id"] * 9 + ["k7e2"] * 3)
    code, out, _ = run_cli(capsys, "predict", "--device", "cpu", "--arch", arch)
    assert code == 0
    value = float(re.search(r"^(\d+\.\d\d) ms$", out, re.M).group(1))
    expected = LatencyPredictor(LatencyTable.read(resolve_device("cpu")), default_space).predict(
        default_space.parse(arch)
    )
    assert value == pytest.approx(expected, abs=0.006)


def test_cli_predict_breakdown_and_range(capsys):
    """The shipped estimates are made for quadranet-t-qe (the table's space, the default here), which
    holds every arch of quadranet-t and the QuadEnhanced blocks besides."""
    arch = "-".join(["k3e2", "k5e4q"] * 9)
    code, out, _ = run_cli(capsys, "predict", "--device", "vpu", "--arch", arch, "--breakdown", "--range")
    assert code == 0
    assert "quadra_block in=56x56x96 k=3 e=2" in out and "head in=7x7x768" in out
    assert "quadra_block in=56x56x96 k=5 e=4 q=1" in out
    assert re.search(r"fastest: [\d.]+ ms  id(-id){17}", out)
    assert re.search(r"slowest: [\d.]+ ms  k7e4q(-k7e4q){17}", out)
    code, out, _ = run_cli(capsys, "predict", "--device", "vpu", "--space", "quadranet-t", "--range")
    assert code == 0 and re.search(r"slowest: [\d.]+ ms  k7e4(-k7e4){17}", out)


def test_cli_predict_user_table_on_tiny_space(capsys, user_dir, tiny_space):
    random_table(tiny_space).write(user_dir / "my-laptop.csv")
    code, out, _ = run_cli(capsys, "predict", "--device", "my-laptop", "--arch", "k3e2-k5e4-id-k7e2-id-k3e4")
    assert code == 0 and re.search(r"^\d+\.\d\d ms$", out, re.M)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--device", "toaster", "--range"], "unknown device 'toaster'"),
        (["--device", "cpu", "--arch", "k3e2-k5e4"], "arch has 2 tokens"),
        (["--device", "cpu", "--arch", "-".join(["k9e2"] * 18)], "arch token 1 'k9e2'"),
        (["--device", "cpu"], "give --arch"),
    ],
)
def test_cli_predict_errors(capsys, argv, expected):
    code, out, err = run_cli(capsys, "predict", *argv)
    assert code == 2 and expected in err and "Traceback" not in err


def test_cli_predict_missing_entries_and_corrupted(capsys, user_dir, tiny_space):
    random_table(tiny_space, tiny_space.all_op_specs()[1:]).write(user_dir / "partial.csv")
    code, _, err = run_cli(capsys, "predict", "--device", "partial", "--range")
    assert code == 2 and "has no row for 1 op spec" in err and "quadnas profile" in err
    broken = random_table(tiny_space).write(user_dir / "broken.csv")
    broken.write_text(broken.read_text() + "stem,1,2\n")
    code, _, err = run_cli(capsys, "predict", "--device", str(broken), "--range")
    assert code == 2 and "corrupted CSV line" in err


def test_cli_tables(capsys, monkeypatch, user_dir, tiny_space):
    monkeypatch.setattr(console, "width", 160)  # check the content, not how a narrow terminal folds it
    table = random_table(tiny_space, device="laptop", provenance="measured")
    table.meta = table_meta(
        tiny_space, device="laptop", calibration=Calibration(mape_pct=2.5, max_err_pct=4.0, networks=3)
    )
    table.write(user_dir / "my-laptop.csv")
    code, out, _ = run_cli(capsys, "tables")
    assert code == 0
    for name in ("my-laptop", "cortex-a76", "myriad-x", "a100", "estimated", "measured", "2.5/4.0 (3 nets)"):
        assert name in out


def other_host() -> Host:
    """A host that is not this one, whatever this one is: a CPU no machine reports."""
    return Host(
        name="Imaginary CPU 9000",
        vendor="Nobody",
        family="99",
        model="99",
        stepping="9",
        features=("sse4_2", "avx", "avx2", "fma"),
        logical_cores=10_000,
        os="Linux 1.0",
        machine="x86_64",
    )


def measured_on(space: SearchSpace, host: Host | None, device: str = "laptop") -> LatencyTable:
    fields = {"host": host, "host_fingerprint": host.fingerprint} if host is not None else {}
    return random_table(space, device=device, aliases=[], **fields)


def test_cli_tables_says_which_measured_tables_are_this_hosts(capsys, monkeypatch, user_dir, tiny_space):
    measured_on(tiny_space, Host.current()).write(user_dir / "here.csv")
    measured_on(tiny_space, other_host()).write(user_dir / "elsewhere.csv")
    measured_on(tiny_space, None).write(user_dir / "old.csv")
    terminal = Console(width=80, file=io.StringIO(), force_terminal=True, color_system=None)
    monkeypatch.setattr(quadnas.cli.tables, "console", terminal)
    assert main(["tables"]) == 0
    lines = terminal.file.getvalue().splitlines()
    assert max(len(line) for line in lines if not line.startswith("user tables")) <= 80
    rows = {line.split()[0]: line for line in lines if line.strip()}
    assert "this host" in rows["here"] and "other host" in rows["elsewhere"] and "not recorded" in rows["old"]
    assert "—" in rows["myriad-x"] and "estimated" in rows["myriad-x"]


def test_cli_predict_notes_another_hosts_table_on_stderr(capsys, user_dir, tiny_space):
    measured_on(tiny_space, other_host()).write(user_dir / "elsewhere.csv")
    code, out, err = run_cli(capsys, "predict", "--device", "elsewhere", "--arch", "k3e2-k5e4-id-k7e2-id-k3e4")
    assert code == 0 and re.search(r"^\d+\.\d\d ms$", out, re.M)
    assert "measured on another host" in err and "Imaginary CPU 9000" in err
    assert "quadnas profile --backend onnxruntime --threads 1 --space tiny --name NAME" in err
    measured_on(tiny_space, Host.current()).write(user_dir / "here.csv")
    code, _, err = run_cli(capsys, "predict", "--device", "here", "--arch", "k3e2-k5e4-id-k7e2-id-k3e4")
    assert code == 0 and "note" not in err


def test_speed_script_writes_throughputs(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import bench_predictor_speed

    out = tmp_path / "speed.json"
    assert bench_predictor_speed.main(["--n", "200", "--repeats", "1", "--devices", "vpu", "--out", str(out)]) == 0
    figures = json.loads(out.read_text())["devices"]["vpu"]
    assert figures["archs_per_s_from_arch_objects"] > 0 and figures["archs_per_s_from_index_array"] > 0
