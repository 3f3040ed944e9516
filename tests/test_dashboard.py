"""A search's study as Optuna's own tools show it: named objectives, a feasible flag, `quadnas dashboard`."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from builders import tiny_search_config

from quadnas._search.run import search
from quadnas.cli import main

pytest.importorskip("optuna_dashboard")


@pytest.fixture(scope="module")
def searched(tmp_path_factory, synthetic_table, tiny_checkpoint, budget):
    runs = tmp_path_factory.mktemp("runs")
    config = tiny_search_config(
        runs,
        synthetic_table,
        tiny_checkpoint,
        budget,
        trials=14,
        mode="pareto",  # proposals over the budget are scored too: trials of both flags
        study="shown",
    )
    return search(config), runs


def test_trials_carry_named_values_and_a_feasible_flag(searched):
    result, _ = searched
    assert result.study.metric_names == ["accuracy", "latency_ms[test-device]"]
    trials = result.study.get_trials()
    for t in trials:
        latency_ms, share = t.user_attrs["latency_ms[test-device]"], t.user_attrs["budget_share[test-device]"]
        assert t.user_attrs["feasible"] is result.budget.admits(latency_ms)
        assert share == pytest.approx(result.budget.share(latency_ms), abs=1e-4)
    assert {t.user_attrs["feasible"] for t in trials} == {True, False}
    assert result.study.user_attrs["table"].endswith("(estimated)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, server: subprocess.Popen, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.communicate()[1].decode()[-2000:]
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.slow
def test_dashboard_serves_the_study_with_its_names_and_flags(searched):
    _, runs = searched
    port = _free_port()
    argv = [sys.executable, "-m", "quadnas", "dashboard", "--runs-dir", str(runs), "--port", str(port)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        studies = _get(f"http://127.0.0.1:{port}/api/studies", server)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["shown"]
        detail = _get(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", server)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert detail["objective_names"] == ["accuracy", "latency_ms[test-device]"]
    assert {"arch", "latency_ms[test-device]", "budget_share[test-device]", "feasible"} <= {
        a["key"] for a in detail["union_user_attrs"]
    }
    flags = {a["value"] for t in detail["trials"] for a in t["user_attrs"] if a["key"] == "feasible"}
    assert flags == {"True", "False"}


def test_dashboard_without_a_study_is_one_line(tmp_path, capsys):
    assert main(["dashboard", "--runs-dir", str(tmp_path)]) == 2
    assert "name the study to show" in capsys.readouterr().err
    assert main(["dashboard", "--runs-dir", str(tmp_path), "--study", "nope"]) == 2
    assert "does not exist: run `quadnas search` first" in capsys.readouterr().err
