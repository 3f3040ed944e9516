import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from builders import tiny_search_argv, tiny_search_config
from scipy.stats import rankdata

from quadnas._search.config import SearchConfig
from quadnas._search.results import Candidate, pareto_front
from quadnas._search.run import search
from quadnas.cli import main
from quadnas.errors import QuadnasError
from quadnas.latency.budget import Budget
from quadnas.latency.predictor import LatencyPredictor
from quadnas.latency.table import LatencyTable
from quadnas.progress import Progress
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.checkpoint import read_checkpoint
from quadnas.supernet.provide import PROXY_HINT
from quadnas.supernet.recipe import SEARCH_EPOCHS, TrainConfig


def test_constrained_search_never_evaluates_over_budget(tmp_path, synthetic_table, tiny_checkpoint, budget):
    result = search(tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, sampler="tpe"))
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 12
    budget_ms = result.budget.ms
    for t in trials:
        latency_ms = t.user_attrs["latency_ms[test-device]"]  # one form for one device or several
        over = latency_ms > budget_ms
        assert t.constraints == {"latency[test-device]": pytest.approx((latency_ms - budget_ms) / budget_ms)}
        assert t.user_attrs["evaluated"] is (not over)
        assert ("accuracy" in t.user_attrs) is (not over)
    assert result.best is not None and result.best.latency_ms <= budget_ms
    assert result.best.accuracy == max(c.accuracy for c in result.ranked)
    best = yaml.safe_load((result.run_dir / "best.yaml").read_text())
    assert best["arch"] == str(result.best.arch) and len(best["devices"]) == 1 and "latency_ms" not in best
    assert best["space"]["fingerprint"] == SearchSpace.load("tiny").fingerprint()
    device = best["devices"][0]
    assert device["label"] == "test-device" and device["latency_ms"] == pytest.approx(result.best.latency_ms, abs=1e-4)
    assert sum(row["ms"] for row in device["latency_breakdown"]) == pytest.approx(device["latency_ms"], rel=1e-3)
    for name in ("trials.csv", "pareto.csv", "pareto.png", "breakdown.png"):
        assert (result.run_dir / name).stat().st_size > 0


def test_rerun_resumes_and_trials_means_total(tmp_path, synthetic_table, tiny_checkpoint, budget):
    config = tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=5)
    first = search(config)
    numbers = [t.number for t in first.study.trials]
    again = search(config)
    assert [t.number for t in again.study.trials] == numbers  # nothing re-run
    more = search(config.model_copy(update={"trials": 8}))
    assert len(more.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8


def test_pareto_and_reward_modes(tmp_path, synthetic_table, tiny_checkpoint, budget):
    pareto = search(
        tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, mode="pareto", study="p")
    )
    assert all(len(t.values) == 2 for t in pareto.study.trials)
    front = pareto.pareto
    assert all(a.latency_ms <= b.latency_ms and a.accuracy < b.accuracy for a, b in zip(front, front[1:]))
    reward = search(
        tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, mode="reward", study="r")
    )
    for t in reward.study.trials:
        acc, lat = t.user_attrs["accuracy"], t.user_attrs["latency_ms[test-device]"]
        assert t.value == pytest.approx(acc * (lat / reward.budget.ms) ** -0.07)


def test_pareto_front_keeps_only_undominated():
    items = [
        Candidate("a", 0.5, {"d": 1.0}, 0),
        Candidate("b", 0.4, {"d": 2.0}, 1),
        Candidate("c", 0.7, {"d": 3.0}, 2),
        Candidate("d", None, {"d": 0.1}, 3),
        Candidate("a", 0.5, {"d": 1.0}, 4),  # a repeated arch stays once
    ]
    assert [c.arch for c in pareto_front(items)] == ["a", "c"]


def test_other_settings_on_same_study_are_refused(tmp_path, synthetic_table, tiny_checkpoint, budget):
    search(tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=2))
    with pytest.raises(QuadnasError, match="was created with other settings.*--study"):
        search(tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, "1000ms", trials=2))


def _tiny_search(capsys, runs, synthetic_table, tiny_checkpoint, trials: int, *budget: str) -> tuple[int, str]:
    return _cli(capsys, *tiny_search_argv(runs, synthetic_table, tiny_checkpoint, trials, *budget))


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"--budget": "30"}, "has no unit"),
        ({"--budget": "=-3ms"}, "must be positive"),
        ({"--budget": "-5ms"}, "must be positive"),
        ({"--device": ""}, "'devices.0.device'.*at least 1 character"),
        ({"--runs-dir": "/dev/null/runs"}, "cannot write to folder /dev/null/runs.*--runs-dir"),
        ({"--budget": "0.0001ms"}, "below the fastest arch.*feasible range"),
        ({"--device": "no-such-device"}, "unknown device 'no-such-device'"),
        ({"--sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"--mode": "fastest"}, "unknown mode 'fastest'"),
        ({"--train-device": "tpu"}, "--train-device 'tpu' is not supported"),
        ({"--storage": "postgresql://nobody@127.0.0.1:1/none"}, "cannot open storage"),
        ({"--space": "quadranet-t", "--device": "vpu", "--budget": "100ms"}, "trained for space 'tiny'"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget, changes, message):
    flags = {
        "--space": "tiny",
        "--data": "digits",
        "--device": str(synthetic_table),
        "--budget": budget,
        "--checkpoint": str(tiny_checkpoint),
        "--runs-dir": str(tmp_path),
        "--trials": "1",
        **changes,
    }
    argv = [
        f"{k}{v}" if v.startswith("=") else part
        for k, v in flags.items()
        for part in ((k, v) if not v.startswith("=") else (None,))
    ]
    argv = [a for a in argv if a is not None]
    code, text = _cli(capsys, "search", *argv)
    assert code == 2
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text
    assert re.search(message, lines[0]), lines[0]


def test_config_file_and_flag_override(tmp_path, synthetic_table, tiny_checkpoint, budget):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"space": "tiny", "device": str(synthetic_table), "budget": "1ms", "trials": 3}))
    config = SearchConfig.from_sources(str(cfg), {"budget": budget, "sampler": None})
    assert config.budget == Budget.parse(budget) and config.trials == 3 and config.sampler == "tpe"
    cfg.write_text(yaml.safe_dump({"budgett": "3ms"}))
    with pytest.raises(QuadnasError, match="'budgett'.*allowed keys"):
        SearchConfig.from_sources(str(cfg), {})


def test_shipped_configs_are_valid():
    for path in Path("configs").glob("*.yaml"):
        config = SearchConfig.from_sources(str(path), {})
        assert {d.device for d in config.devices} <= {"cpu", "vpu", "gpu"}


def _worker(
    storage: str, synthetic_table: Path, tiny_checkpoint: Path, budget: str, runs: Path, study: str
) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "quadnas",
        "search",
        "--space",
        "tiny",
        "--data",
        "digits",
        "--device",
        str(synthetic_table),
        "--budget",
        budget,
        "--checkpoint",
        str(tiny_checkpoint),
        "--runs-dir",
        str(runs),
        "--trials",
        "16",
        "--sampler",
        "random",
        "--storage",
        storage,
        "--study",
        study,
    ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


def _two_workers_share_one_study(storage: str, study: str, synthetic_table, tiny_checkpoint, budget, runs) -> None:
    workers = [_worker(storage, synthetic_table, tiny_checkpoint, budget, runs, study) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode in (0, 1) for w in workers), outputs
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 16  # --trials is exact: a trial finishing after the 16th is closed unevaluated
    assert len({t.number for t in trials}) == len(trials)
    evaluated = [
        t.user_attrs["arch"] for t in trials if t.user_attrs.get("evaluated") and "reused_from" not in t.user_attrs
    ]
    assert len(evaluated) == len(set(evaluated))  # no arch evaluated twice across the workers
    assert any("16/16 trials" in out for out in outputs), outputs  # bars count every worker's trials


def test_two_workers_on_sqlite(tmp_path, synthetic_table, tiny_checkpoint, budget):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    _two_workers_share_one_study(storage, "shared", synthetic_table, tiny_checkpoint, budget, tmp_path / "runs")


@pytest.mark.postgres
def test_two_workers_on_postgresql(tmp_path, synthetic_table, tiny_checkpoint, budget):
    url = os.environ.get("QUADNAS_TEST_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets QUADNAS_TEST_POSTGRES")
    study = f"pg-{os.getpid()}-{tmp_path.name}"
    try:
        _two_workers_share_one_study(url, study, synthetic_table, tiny_checkpoint, budget, tmp_path / "runs")
    finally:
        optuna.delete_study(study_name=study, storage=url)


def test_sqlite_studies_use_a_write_ahead_log(tmp_path):
    """Every connection of a SQLite study: WAL, synchronous NORMAL (a commit does not wait for the disk twice)."""
    import sqlalchemy as sa

    from quadnas._search.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'wal.db'}")
    with storage.engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(sa.text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_kill_9_mid_search_loses_no_completed_trial(tmp_path, synthetic_table, tiny_checkpoint, budget):
    storage = f"sqlite:///{tmp_path / 'killed.db'}"
    worker = _worker(storage, synthetic_table, tiny_checkpoint, budget, tmp_path / "runs", "killed")
    done: list = []
    deadline = time.monotonic() + 600
    while len(done) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            done = optuna.load_study(study_name="killed", storage=storage).get_trials(
                states=(optuna.trial.TrialState.COMPLETE,)
            )
        except KeyError:  # the study does not exist yet
            continue
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {
        t.number: t.user_attrs["arch"]
        for t in optuna.load_study(study_name="killed", storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
    }
    assert len(before) >= 4
    rerun = _worker(storage, synthetic_table, tiny_checkpoint, budget, tmp_path / "runs", "killed")
    assert rerun.wait(timeout=600) in (0, 1), rerun.stdout.read()
    after = optuna.load_study(study_name="killed", storage=storage).get_trials(
        states=(optuna.trial.TrialState.COMPLETE,)
    )
    assert {n: a for n, a in ((t.number, t.user_attrs["arch"]) for t in after) if n in before} == before
    assert len(after) == 16


def test_python_api_mirrors_the_cli(tmp_path, synthetic_table, tiny_checkpoint, budget):
    import quadnas

    result = quadnas.search(
        space="tiny",
        data="digits",
        device=str(synthetic_table),
        budget=budget,
        checkpoint=str(tiny_checkpoint),
        runs_dir=str(tmp_path),
        trials=3,
        sampler="random",
        study="api",
    )
    assert isinstance(result.study, optuna.Study) and len(result.study.trials) == 3
    assert result.best is None or result.best.latency_ms <= result.budget.ms


def test_python_api_reports_progress_through_logging_and_a_callback(
    tmp_path, synthetic_table, tiny_checkpoint, budget, caplog
):
    import logging

    events = []
    with caplog.at_level(logging.INFO, logger="quadnas"):
        search(
            tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=4),
            progress=Progress(events.append),
        )
    assert [e.done for e in events if e.what == "search"] == [1, 2, 3, 4]
    assert any("search: 4/4 trials (100%)" in r.getMessage() for r in caplog.records)


def test_search_leaves_matplotlib_and_optuna_settings_alone(tmp_path, synthetic_table, tiny_checkpoint, budget):
    import matplotlib

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # the CLI (run by other tests) lowers it
    try:
        backend = matplotlib.get_backend()
        search(tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=2))
        assert (matplotlib.get_backend(), optuna.logging.get_verbosity()) == (backend, optuna.logging.INFO)
    finally:
        optuna.logging.set_verbosity(before)


def test_cli_prints_plain_progress_lines_when_stderr_is_not_a_terminal(
    capsys, tmp_path, synthetic_table, tiny_checkpoint, budget
):
    code, text = _tiny_search(capsys, tmp_path, synthetic_table, tiny_checkpoint, 10, budget)
    assert code in (0, 1)
    lines = [line for line in text.splitlines() if line.startswith("search: ")]
    assert lines[0] == "search: 10 trials" and lines[-1].startswith("search: 10/10 trials (100%)")


def test_budget_in_two_words_is_read(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget):
    value = budget.removesuffix("ms")
    code, text = _tiny_search(capsys, tmp_path, synthetic_table, tiny_checkpoint, 2, value, "ms")
    assert code in (0, 1) and f"budget {float(value):g} ms" in text


def test_an_abbreviated_budget_flag_is_joined_as_the_whole_one():
    from quadnas.cli import join_latency_words

    assert join_latency_words(["search", "--budg", "30", "ms"]) == ["search", "--budget=30ms"]
    assert join_latency_words(["search", "--bu", "30ms"]) == ["search", "--bu", "30ms"]  # too short to be sure


def test_best_arch_is_printed_whole_and_the_table_breaks_only_at_dashes(
    capsys, tmp_path, synthetic_table, tiny_checkpoint, budget
):
    from quadnas.cli.search import wrap_arch

    assert wrap_arch(Arch.from_text("k3e2-k5e4-id-k7e2-id"), 2) == "k3e2-k5e4-\nid-k7e2-\nid"
    code, text = _tiny_search(capsys, tmp_path, synthetic_table, tiny_checkpoint, 6, budget)
    best = yaml.safe_load(next(tmp_path.glob("*/best.yaml")).read_text())["arch"]
    assert f"best arch: {best}" in text.splitlines()
    tokens = {str(c) for c in SearchSpace.load("tiny").choices}
    for line in text.splitlines():
        if line.startswith("│") and "ms" in line:
            cell = line.split("│")[2].strip()
            assert all(token in tokens for token in cell.strip("-").split("-")), line


def test_a_worker_waiting_for_the_supernet_lock_says_so(tmp_path, monkeypatch):
    import threading

    from filelock import FileLock

    from quadnas.supernet import provide

    monkeypatch.setattr(provide, "LOCK_NOTE_S", 0.05)
    notes: list[str] = []

    class Notes(Progress):
        def note(self, text: str) -> None:
            notes.append(text)

    path = tmp_path / "cache.lock"
    held = FileLock(path)
    held.acquire()
    entered = threading.Event()

    def wait() -> None:
        with provide.file_lock(path, Notes()):
            entered.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 60
    while len(notes) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not entered.is_set() and len(notes) >= 2 and "waiting for another process" in notes[0]
    held.release()
    waiter.join(timeout=10)
    assert entered.is_set()


def test_study_created_by_another_worker_mid_setup_is_joined(tmp_path, synthetic_table, tiny_checkpoint, budget):
    config = tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=2)
    storage = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(storage=storage, study_name=config.study_name(), direction="maximize")
    study.set_user_attr("device", config.device)  # the creator has written one setting so far
    result = search(config.model_copy(update={"storage": storage}))
    assert result.study.user_attrs["budget_ms"] == pytest.approx([result.budget.ms])


def test_pareto_plot_legend_lists_only_what_is_drawn_beside_the_axes(
    tmp_path, synthetic_table, tiny_checkpoint, budget
):
    from quadnas._search.report import pareto_figure

    result = search(
        tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=6, sampler="tpe")
    )
    fig = pareto_figure(result)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "over budget" not in labels and "within budget" in labels  # constrained: over-budget never evaluated
    assert not fig.axes[0].get_legend()  # the legend is the figure's, outside the axes


def test_a_failed_trial_is_reported_in_one_line_and_not_counted(tmp_path, synthetic_table, tiny_checkpoint, budget):
    config = tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=3)
    storage = f"sqlite:///{tmp_path / 'failed.db'}"
    study = optuna.create_study(storage=storage, study_name=config.study_name(), direction="maximize")
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # as a stopped worker's trial ends
    result = search(config.model_copy(update={"storage": storage}))
    assert len(result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    assert any(
        note.startswith("1 failed trial(s) (0)") and "--trials counts complete trials" in note for note in result.notes
    )


def test_a_study_refuses_accuracies_from_another_supernet(tmp_path, synthetic_table, tiny_checkpoint, budget):
    from quadnas.supernet.checkpoint import read_checkpoint, save_checkpoint

    search(tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=2))
    state = read_checkpoint(tiny_checkpoint)
    name = next(iter(state["model"]))
    state["model"][name] = state["model"][name] + 1
    other = tmp_path / "other.pt"
    save_checkpoint(other, {k: v for k, v in state.items() if k != "format"})
    with pytest.raises(QuadnasError, match="accuracies came from another supernet.*supernet_sha256_16.*--study"):
        search(tiny_search_config(tmp_path / "runs", synthetic_table, other, budget, trials=4))


def test_feasible_tpe_proposes_only_archs_under_the_budget(tmp_path, synthetic_table, tiny_checkpoint, budget):
    """After the seeds, every TPE proposal fits: candidates over the budget are never chosen when one fits."""
    result = search(
        tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=30, sampler="tpe")
    )
    key = "latency_ms[test-device]"
    proposed = [t.user_attrs[key] for t in result.study.trials if key in t.user_attrs]
    assert len(proposed) == 30 and max(proposed) <= result.budget.ms


def test_feasible_tpe_weighs_only_admitted_candidates():
    import numpy as np

    from quadnas._search.samplers import FeasibleTPESampler

    sampler = FeasibleTPESampler(lambda samples: samples["x"] < 2, seed=0, n_startup_trials=5)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(lambda t: t.suggest_categorical("x", [0, 1, 2, 3]) * 1.0, n_trials=40)
    later = [t.params["x"] for t in study.trials[5:]]
    assert set(later) <= {0, 1}  # TPE alone would chase the best values, 2 and 3
    assert sampler._admits({"x": np.array([0.0, 3.0])}).tolist() == [True, False]


def test_one_budget_in_two_units_names_one_study():
    in_seconds, in_ms = SearchConfig(budget="0.03s"), SearchConfig(budget="30ms")
    assert in_seconds.study_name() == in_ms.study_name() == "quadranet-t-mnist5k-vpu-30ms-constrained"
    assert SearchConfig.checked(in_seconds.model_dump()).budget == in_ms.budget  # a dump reads back as itself


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_every_trial_proposes_a_new_arch_while_new_ones_fit(sampler):
    """Four archs in all (two blocks, two choices), three of them within the budget."""
    from quadnas._search.samplers import GuidedSampler, make_sampler

    fits = lambda params: params != {"b0": "k7e4", "b1": "k7e4"}  # noqa: E731
    guided = GuidedSampler(lambda seed: make_sampler(sampler, seed), 0, [{"b0": "k3e2", "b1": "k3e2"}], fits)
    study = optuna.create_study(sampler=guided)
    study.optimize(
        lambda t: len(t.suggest_categorical("b0", ["k3e2", "k7e4"]) + t.suggest_categorical("b1", ["k3e2", "k7e4"])),
        n_trials=3,
    )
    proposed = [(t.params["b0"], t.params["b1"]) for t in study.trials]
    assert len(set(proposed)) == 3 and ("k7e4", "k7e4") not in proposed


def test_a_search_that_runs_out_of_new_archs_says_so(tmp_path, synthetic_table, tiny_checkpoint):
    space = SearchSpace.load("tiny")
    predictor = LatencyPredictor(LatencyTable.read(synthetic_table), space)
    every = np.stack(np.meshgrid(*[range(len(space.choices))] * space.num_blocks), axis=-1).reshape(
        -1, space.num_blocks
    )
    fifth = float(np.sort(predictor.predict_many(every))[4])  # five archs fit, among 117,649
    result = search(
        tiny_search_config(
            tmp_path / "runs", synthetic_table, tiny_checkpoint, f"{fifth * 1.000001:.6f}ms", sampler="tpe", trials=14
        )
    )
    repeated = len(result.candidates) - len({c.arch for c in result.candidates})
    said = [n for n in result.notes if "repeated an arch the study already held" in n]
    assert len({c.arch for c in result.candidates if c.feasible(result.budgets)}) <= 5
    assert (repeated > 0) == bool(said) and (not said or said[0].startswith(f"{repeated} of 14 trials"))


def test_a_search_caches_its_supernet_under_its_runs_dir(tmp_path, synthetic_table, budget, monkeypatch, capsys):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = tiny_search_config(tmp_path / "runs", synthetic_table, None, budget, train_epochs=1, trials=2)
    result = search(config, progress=Progress(lambda _: None))
    cached = list((tmp_path / "runs" / "supernets").glob("*-search-*.pt"))
    assert len(cached) == 1 and result.study.user_attrs["checkpoint"] == str(cached[0])
    assert not (elsewhere / "runs").exists()
    assert main(["cache", "list", "--runs-dir", str(tmp_path / "runs")]) == 0
    listed = " ".join(capsys.readouterr().out.split())
    assert "(1)" in listed and "search" in listed


def test_train_width_sets_the_width_of_the_supernet_a_search_trains_and_caches(
    tmp_path, synthetic_table, budget, caplog
):
    runs = tmp_path / "runs"
    hinted = []
    for width in (None, 0.5):
        changes = {"train_epochs": 1, "trials": 2, "train_width": width, "study": f"w{width}"}
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="quadnas"):
            search(tiny_search_config(runs, synthetic_table, None, budget, **changes))
        hinted.append(PROXY_HINT in caplog.text)
    assert hinted == [True, False]  # the default proxy says how to rank better; a chosen width does not
    widths = {read_checkpoint(p)["config"]["width"] for p in (runs / "supernets").glob("*-search-*.pt")}
    assert widths == {0.25, 0.5}  # two caches: a width never reuses another's


def test_the_search_proxy_is_a_quarter_wide_on_the_demo_sets_and_half_elsewhere():
    quick, clutter, mine = (TrainConfig.for_search(d) for d in ("mnist5k", "mnist5k-clutter", "/data/mine"))
    assert quick == TrainConfig.for_search("digits") and (quick.width, quick.epochs) == (0.25, SEARCH_EPOCHS)
    assert clutter == mine and (clutter.width, clutter.epochs) == (0.5, SEARCH_EPOCHS)
    chosen = TrainConfig.for_search("mnist5k-clutter", width=1.0, epochs=3)
    assert (chosen.width, chosen.epochs) == (1.0, 3)


def test_train_width_outside_zero_to_one_is_a_one_line_error(tmp_path, synthetic_table, tiny_checkpoint, capsys):
    argv = tiny_search_argv(tmp_path / "runs", synthetic_table, tiny_checkpoint, 2, "30ms")
    assert main([*argv, "--train-width", "1.5"]) != 0
    err = capsys.readouterr().err
    assert "train_width" in err and "less than or equal to 1" in err and "Traceback" not in err
    assert main([*argv, "--train-width", "0.5"]) != 0  # a given checkpoint is not trained: nothing to widen
    err = capsys.readouterr().err
    assert "train_width apply only to a supernet the search trains" in err and "Traceback" not in err


def test_rerank_orders_the_archs_under_the_budget_by_mean_rank(tmp_path, synthetic_table, tiny_checkpoint, budget):
    config = tiny_search_config(tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, trials=8)
    plain = search(config)
    reranked = search(config.model_copy(update={"rerank": "params"}))  # the same study: no new trial
    assert len(reranked.study.trials) == len(plain.study.trials)
    assert {c.arch for c in reranked.ranked} == {c.arch for c in plain.ranked}
    assert all(c.proxy is None for c in plain.ranked) and all(c.proxy > 0 for c in reranked.ranked)
    place = {c.arch: i for i, c in enumerate(plain.ranked)}
    proxy = {c.arch: c.proxy for c in reranked.ranked}
    accuracy_rank = rankdata([c.accuracy for c in plain.ranked])  # ties share their mean rank
    proxy_rank = rankdata([proxy[c.arch] for c in plain.ranked])
    mean_rank = {c.arch: (a + p) / 2 for c, a, p in zip(plain.ranked, accuracy_rank, proxy_rank)}
    expected = sorted(plain.ranked, key=lambda c: (-mean_rank[c.arch], place[c.arch]))
    assert [c.arch for c in reranked.ranked] == [c.arch for c in expected] and reranked.best == reranked.ranked[0]
    n = len(plain.ranked)
    best = yaml.safe_load((reranked.run_dir / "best.yaml").read_text())
    assert best["arch"] == str(reranked.best.arch)
    assert best["rerank"] == {
        "proxy": "params",
        "score": reranked.best.proxy,
        "supernet_place": place[reranked.best.arch] + 1,
        "of": n,
    }


def test_an_unknown_rerank_proxy_is_one_line(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget):
    argv = tiny_search_argv(tmp_path, synthetic_table, tiny_checkpoint, 1, budget)
    code, text = _cli(capsys, *argv, "--rerank", "accuracy")
    assert code == 2 and text.strip() == (
        "error: unknown proxy 'accuracy' for rerank: use one of params, macs, synflow, zico, meco, meco_opt"
    )


def test_the_result_table_shows_the_rerank_proxy(capsys, tmp_path, synthetic_table, tiny_checkpoint, budget):
    code, text = _cli(
        capsys, *tiny_search_argv(tmp_path, synthetic_table, tiny_checkpoint, 4, budget), "--rerank", "macs"
    )
    header = next(line for line in text.splitlines() if " arch " in line)
    assert code == 0 and [cell.strip() for cell in header.split("┃")][4] == "macs"


def test_rerank_scores_archs_on_a_training_split_smaller_than_its_batches(tmp_path):
    import random

    from quadnas._search.rerank import proxy_scores
    from quadnas.data import load_dataset

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "few.npz", x=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), y=np.arange(40) % 4)
    data = load_dataset(str(tmp_path / "few.npz"))  # 32 training images, fewer than 2 batches of 64
    space = SearchSpace.load("tiny")
    archs = [space.sample(random.Random(seed)) for seed in range(2)]
    scores = proxy_scores(space, archs, data, "zico", Progress())
    assert len(scores) == 2 and all(np.isfinite(scores))
