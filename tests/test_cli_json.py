"""`--json` (one document on stdout, docs/json.md), `-q`/`-v` and `--version` of the command line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from builders import random_table, tiny_search_argv
from rich.console import Console

import quadnas.cli.tables
from quadnas._version import __version__
from quadnas.cli import main
from quadnas.cli.json_output import run_json
from quadnas.cli.progress import RichProgress, log_to, progress_for
from quadnas.latency.host import Host
from quadnas.latency.table import LatencyTable
from quadnas.progress import logger
from quadnas.space import SearchSpace

ARCH = "k3e2-k5e4-id-k7e2-id-k3e4"  # of the tiny space


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch) -> Path:
    """An empty user table dir, so a developer's own tables never leak into the tests."""
    path = tmp_path / "user-tables"
    monkeypatch.setenv("QUADNAS_TABLES", str(path))
    return path


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def document(out: str, schema: str) -> dict[str, Any]:
    """stdout read as one JSON document (json.loads refuses anything beside it) of `schema`."""
    doc = json.loads(out)
    assert list(doc)[0] == "schema" and doc["schema"] == f"quadnas.{schema}/1"
    return doc


def search_argv(runs: Path, table: Path, checkpoint: Path, budget: str, trials: int) -> list[str]:
    """`quadnas search --json` of the tiny space on the shared table and checkpoint."""
    return [*tiny_search_argv(runs, table, checkpoint, trials, budget), "--json"]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"quadnas {__version__}\n"


def test_search_json(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget):
    code, out, err = run_cli(capsys, *search_argv(tmp_path, synthetic_table, tiny_checkpoint, budget, 4))
    doc = document(out, "search")
    assert code == (0 if doc["best"] else 1)
    assert doc["budget_ms"] == pytest.approx(float(budget.removesuffix("ms")))
    assert doc["complete_trials"] == 4 and doc["mode"] == "constrained" and doc["space"] == "tiny"
    assert Path(doc["run_dir"]) == tmp_path / doc["study"] and Path(doc["files"]["trials.csv"]).is_file()
    assert doc["devices"] == [{"device": str(synthetic_table), "name": "test-device", "budget_ms": doc["budget_ms"]}]
    for c in doc["ranked"] + doc["pareto"]:
        keys = {
            "arch",
            "accuracy",
            "latency_ms",
            "budget_share",
            "devices",
            "proxy",
            "trained",
            "trained_seeds",
            "origin",
            "trial",
        }
        assert set(c) == keys and c["trained"] is None and c["origin"] == "search"
        only = {"device": str(synthetic_table), "latency_ms": c["latency_ms"], "budget_share": c["budget_share"]}
        assert c["devices"] == [only]  # one device: its keys repeat the candidate's
        SearchSpace.load("tiny").parse(c["arch"])
    assert all(c["latency_ms"] <= doc["budget_ms"] and c["budget_share"] <= 1 for c in doc["ranked"])
    if doc["best"] is not None:
        assert doc["best"] == doc["ranked"][0] and isinstance(doc["best"]["accuracy"], float)
    assert doc["finalists"] == [] and doc["finalist_epochs"] is None  # none by default on digits
    assert "search: 4 trials" in err  # progress still goes to stderr


def test_search_json_when_no_arch_fits_exits_1_and_quiet_shows_nothing(
    capsys, monkeypatch, tmp_path, synthetic_table, tiny_checkpoint, budget
):
    monkeypatch.setattr("quadnas._search.run.rank_feasible", lambda items, budget: [])  # as if none fitted
    code, out, err = run_cli(capsys, "-q", *search_argv(tmp_path, synthetic_table, tiny_checkpoint, budget, 2))
    doc = document(out, "search")
    assert code == 1 and doc["best"] is None and doc["ranked"] == [] and "best.yaml" not in doc["files"]
    assert len(doc["closest"]) == 2 and doc["closest"][0]["latency_ms"] <= doc["closest"][1]["latency_ms"]
    assert err == ""  # -q: no progress lines, no notes


def test_predict_json(capsys):
    arch = "-".join(["k3e2"] * 18)
    code, out, err = run_cli(capsys, "predict", "--device", "vpu", "--arch", arch, "--breakdown", "--range", "--json")
    doc = document(out, "predict")
    assert code == 0 and err == ""
    assert doc["arch"] == arch and doc["space"] == "quadranet-t-qe"  # the shipped estimates' space
    assert doc["table"]["name"] == "myriad-x" and doc["table"]["provenance"] == "estimated"
    assert doc["table"]["path"].endswith("myriad-x.csv") and doc["table"]["host"] is None
    assert sum(row["ms"] for row in doc["breakdown"]) == pytest.approx(doc["latency_ms"])
    assert doc["breakdown"][0]["op"].startswith("stem") and sum(r["share"] for r in doc["breakdown"]) == pytest.approx(
        1
    )
    assert doc["range"]["fastest"]["arch"] == "-".join(["id"] * 18)
    assert doc["range"]["fastest"]["latency_ms"] < doc["latency_ms"] < doc["range"]["slowest"]["latency_ms"]

    code, out, _ = run_cli(capsys, "predict", "--device", "vpu", "--range", "--json")
    doc = document(out, "predict")
    assert code == 0 and doc["arch"] is doc["latency_ms"] is doc["breakdown"] is None and doc["range"]


def test_tables_json(capsys, user_dir, tiny_space):
    random_table(tiny_space, device="laptop", aliases=[]).write(user_dir / "my-laptop.csv")
    (user_dir / "junk.csv").write_text("name,value\nvpu,1\n")
    code, out, _ = run_cli(capsys, "tables", "--json")
    doc = document(out, "tables")
    assert code == 0 and doc["user_dir"] == str(user_dir)
    first = doc["tables"][0]
    assert first["name"] == "my-laptop" and first["where"] == "user" and first["provenance"] == "measured"
    assert first["host"] == "not recorded" and first["created"].startswith("20")
    shipped = {t["name"]: t for t in doc["tables"] if t["where"] == "shipped"}
    assert shipped["myriad-x"]["aliases"] == ["vpu"] and shipped["myriad-x"]["calibration"]["mape_pct"] > 0
    (junk,) = doc["unreadable"]
    assert junk["path"] == str(user_dir / "junk.csv") and junk["where"] == "user" and junk["error"]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory) -> tuple[int, str, Path]:
    """`quadnas profile --json` of the tiny space, few rounds: its exit code, stdout and table."""
    path = tmp_path_factory.mktemp("tables") / "tiny-ort.csv"
    schedule = ["--rounds", "2", "--round-ms", "2", "--window", "4", "--calibration-nets", "3", "--network-rounds", "1"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(["profile", "--space", "tiny", "--out", str(path), *schedule, "--json"])
    return code, out.getvalue(), path


def test_profile_json(profiled, tiny_space):
    code, out, path = profiled
    doc = document(out, "profile")
    assert code == 0 and doc["table"]["path"] == str(path)
    assert doc["op_specs"] == len(tiny_space.all_op_specs()) == len(LatencyTable.read(path))
    assert doc["table"]["backend"] == "onnxruntime" and doc["table"]["threads"] == 1 and doc["clock"] == "cpu"
    assert doc["table"]["calibration"]["networks"] == 3 and doc["table"]["host"] == "this host"
    assert doc["host_fingerprint"] == Host.current().fingerprint and doc["seconds"] > 0


def test_validate_json(profiled, capsys, tmp_path):
    _, _, path = profiled
    code, out, _ = run_cli(capsys, "validate", "--table", str(path), "--n", "2", "--network-rounds", "1", "--json")
    doc = document(out, "validate")
    assert code == 0 and doc["n"] == 2 == len(doc["archs"]) == len(doc["measured_ms"]) == len(doc["predicted_ms"])
    assert doc["table"] == path.stem and doc["backend"] == "onnxruntime" and doc["host_note"] is None
    assert doc["max_err_pct"] >= doc["mape_pct"] >= 0
    # with a path, the same document goes to the file and the text stays on stdout
    code, out, _ = run_cli(capsys, "validate", "--table", str(path), "--n", "2", "--json", str(tmp_path / "v.json"))
    assert code == 0 and "MAPE" in out and f"wrote {tmp_path / 'v.json'}" in out
    assert document((tmp_path / "v.json").read_text(), "validate")["n"] == 2


def other_hosts_table(space: SearchSpace, user_dir: Path) -> None:
    """`elsewhere`: a table measured on a CPU no machine reports."""
    host = Host(name="Imaginary CPU 9000", family="99", model="99", features=("avx2",), logical_cores=10_000)
    random_table(space, device="laptop", aliases=[], host=host, host_fingerprint=host.fingerprint).write(
        user_dir / "elsewhere.csv"
    )


def test_quiet_hides_notes_and_json_keeps_them_on_stderr(capsys, user_dir, tiny_space):
    other_hosts_table(tiny_space, user_dir)
    code, out, err = run_cli(capsys, "predict", "--device", "elsewhere", "--arch", ARCH, "--json")
    assert code == 0 and document(out, "predict")["table"]["host"] == "other host"
    assert err.startswith("note: ") and "Imaginary CPU 9000" in err
    code, out, err = run_cli(capsys, "-q", "predict", "--device", "elsewhere", "--arch", ARCH)
    assert code == 0 and re.match(r"\d+\.\d\d ms\n", out) and err == ""


def test_quiet_hides_the_progress_bars():
    for level, bars in ((logging.INFO, True), (logging.WARNING, False)):
        terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
        with log_to(terminal, level):
            progress = progress_for(terminal)
            assert isinstance(progress, RichProgress) == bars
            with progress.task("search", 2) as task:
                task.advance(2)
            progress.note("a note")
        assert ("a note" in terminal.file.getvalue()) == bars
        assert ("search" in terminal.file.getvalue()) == bars


def test_quiet_default_and_verbose_set_the_log_level(capsys, monkeypatch):
    def command(args):
        logger.debug("a debug line")
        logger.info("an info line")
        logger.warning("a warning")

    monkeypatch.setattr(quadnas.cli.tables, "run", command)
    before = logger.level
    for flags, shown in (
        (["-q"], ["warning: a warning"]),
        ([], ["an info line", "warning: a warning"]),
        (["-v"], ["a debug line", "an info line", "warning: a warning"]),
        (["--verbose"], ["a debug line", "an info line", "warning: a warning"]),
    ):
        code, out, err = run_cli(capsys, *flags, "tables")
        assert code == 0 and out == "" and err.splitlines() == shown, flags
    assert logger.level == before  # restored after the command
    with pytest.raises(SystemExit) as exit:
        main(["-q", "-v", "tables"])
    assert exit.value.code == 2 and "not allowed with argument -q/--quiet" in capsys.readouterr().err


def test_export_json(capsys, tmp_path):
    out = tmp_path / "m.xml"
    argv = ["export", "--arch", "k3e2-id-k5e4-k7e2-id-k3e4", "--space", "tiny", "--init", "random"]
    code, stdout, _ = run_cli(capsys, *argv, "--format", "openvino", "--precision", "fp16", "--out", str(out), "--json")
    doc = document(stdout, "export")
    assert code == 0 and doc["path"] == str(out) and doc["weights_precision"] == "fp16" and doc["onnx_opset"] == 17
    assert doc["parity"]["tolerance_of_logit_scale"] == 1e-2 and set(doc["parity"]["max_abs_diff"]) == {"1", "3"}
    assert doc["weights"] == "random" and doc["latency_check"] is None and doc["accuracy"] is None
    assert doc["model_card"] == str(out) + ".md" and str(out.with_suffix(".bin")) in doc["files"]


def test_run_json_reads_the_document_of_a_command_in_another_process(user_dir, tmp_path):
    """`run_json`: the document a fresh `quadnas ... --json` prints; a command that prints none stops the caller
    with its last line of stderr."""
    doc = run_json("tables", cwd=tmp_path)
    assert doc["schema"] == "quadnas.tables/1" and doc["user_dir"] == str(user_dir)
    with pytest.raises(SystemExit, match=r"^quadnas predict --device failed: .*no-such-table"):
        run_json("predict", "--device", "no-such-table", "--arch", ARCH, cwd=tmp_path)
