"""Long studies on many workers: new archs when the sampler repeats, one shared read per trial, the load test."""

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from builders import tiny_search_config

from quadnas._search import run as run_module
from quadnas._search.objective import Objective
from quadnas._search.samplers import BY_ALTERNATIVE, BY_SAMPLER, BY_SEED, SEED_TRIALS, guided_sampler
from quadnas._search.shared_reads import SharedReads
from quadnas._search.targets import Targets
from quadnas.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent


class _Stuck(optuna.samplers.BaseSampler):
    """Proposes one arch, every time."""

    def __init__(self, params: dict[str, str], tokens: list[str]):
        self.params, self.tokens = params, tokens

    def infer_relative_search_space(self, study, trial):
        return {name: optuna.distributions.CategoricalDistribution(self.tokens) for name in self.params}

    def sample_relative(self, study, trial, search_space):
        return dict(self.params)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.params[param_name]


def test_a_sampler_that_repeats_itself_gets_new_archs_and_the_trials_say_so(tmp_path, synthetic_table, budget):
    config = tiny_search_config(tmp_path, synthetic_table, None, budget, sampler="tpe")
    space = SearchSpace.load("tiny")
    targets = Targets.load(config.devices, space)
    guided = guided_sampler(config, space, targets)
    stuck = guided.seeds[0]  # a feasible arch the study holds from its first trial on
    guided.make_base = lambda seed: _Stuck(stuck, [str(c) for c in space.choices])
    objective = Objective(space, targets, lambda arch: 0.5, "constrained", -0.07, total=30)
    study = optuna.create_study(direction="maximize", sampler=guided)
    study.optimize(objective, n_trials=30)

    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    archs = [t.user_attrs["arch"] for t in complete]
    assert len(complete) == 30 and len(set(archs)) == 30  # no arch twice while new ones fit
    assert all(t.user_attrs["feasible"] for t in complete)
    by = [t.user_attrs["proposed_by"] for t in complete]
    seeds = len(guided.seeds)
    assert 0 < seeds <= SEED_TRIALS and by[:seeds] == [BY_SEED] * seeds
    assert by[seeds:] == [BY_ALTERNATIVE] * (30 - seeds)  # the stuck base repeated a seed every time: each counted


def _stuck_study(tmp_path, synthetic_table, budget) -> tuple[SearchSpace, Targets, optuna.Study, dict[str, str]]:
    """A study of the tiny space whose guided sampler, without seeds, proposes the smallest arch every time."""
    config = tiny_search_config(tmp_path, synthetic_table, None, budget)
    space = SearchSpace.load("tiny")
    targets = Targets.load(config.devices, space)
    guided = guided_sampler(config, space, targets)
    guided.seeds = []
    twin = space.to_params(space.smallest())
    guided.make_base = lambda seed: _Stuck(twin, [str(c) for c in space.choices])
    return space, targets, optuna.create_study(direction="maximize", sampler=guided), twin


def test_a_twin_of_a_lower_trial_drawn_at_the_same_moment_is_pruned(synthetic_table, budget, tmp_path):
    """Two workers draw one arch at once: the higher-numbered trial is pruned, the complete archs stay distinct."""
    space, targets, study, twin = _stuck_study(tmp_path, synthetic_table, budget)
    other = study.ask()  # trial 0: a worker that has drawn the arch but not yet written it

    def accuracy(arch):  # while trial 1 is evaluated, trial 0 writes the same arch
        choices = optuna.distributions.CategoricalDistribution(objective.tokens)
        for name, value in twin.items():
            study._storage.set_trial_param(other._trial_id, name, choices.to_internal_repr(value), choices)
        return 0.5

    objective = Objective(space, targets, accuracy, "constrained", -0.07, total=5)
    study.optimize(objective, n_trials=1)
    trial = study.trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED and trial.user_attrs["duplicate_of"] == 0
    assert trial.user_attrs["proposed_by"] == BY_SAMPLER


def test_a_trial_yields_its_arch_to_a_higher_twin_that_completed_first(synthetic_table, budget, tmp_path):
    """The higher-numbered twin checked before this trial's arch reached the storage and completed: this one,
    though lower, is pruned, so the complete trials stay distinct archs."""
    space, targets, study, twin = _stuck_study(tmp_path, synthetic_table, budget)
    trial = study.ask()  # trial 0, evaluated below

    def accuracy(arch):  # meanwhile trial 1 draws the same arch and completes
        choices = optuna.distributions.CategoricalDistribution(objective.tokens)
        distributions = dict.fromkeys(twin, choices)
        study.add_trial(optuna.trial.create_trial(params=twin, distributions=distributions, value=0.5))
        return 0.5

    objective = Objective(space, targets, accuracy, "constrained", -0.07, total=5)
    with pytest.raises(optuna.TrialPruned):
        objective(trial)
    assert trial.user_attrs["duplicate_of"] == 1


def test_a_trial_reads_the_study_once_in_a_few_transactions_at_any_size(
    tmp_path, synthetic_table, tiny_checkpoint, budget, monkeypatch
):
    """Per trial, over trials 0-20 and then 20-80 of one study: the reads of the whole study that reach the
    storage, the transactions and the SQL statements (all writes of a trial go in a few transactions)."""
    from sqlalchemy import event

    from quadnas._search import shared_reads as shared_module

    reads, transactions, statements = [0], [0], [0]

    def counting(storage):
        shared = shared_module.shared_reads(storage)
        read = shared.storage.get_all_trials

        def counted(*args: Any, **kwargs: Any):
            reads[0] += 1
            return read(*args, **kwargs)

        def statement(conn, *_):
            statements[0] += 1
            conn.info["wrote"] = True

        def commit(conn):
            transactions[0] += conn.info.pop("wrote", False)

        shared.storage.get_all_trials = counted
        event.listen(storage.engine, "before_cursor_execute", statement)
        event.listen(storage.engine, "commit", commit)
        return shared

    monkeypatch.setattr(run_module, "shared_reads", counting)
    storage = f"sqlite:///{tmp_path / 'reads.db'}"
    config = tiny_search_config(
        tmp_path / "runs", synthetic_table, tiny_checkpoint, budget, sampler="tpe", storage=storage
    )
    per_trial = []
    for before, total in ((0, 20), (20, 80)):
        reads[0] = transactions[0] = statements[0] = 0
        result = run_module.search(config.model_copy(update={"trials": total}))
        assert len(result.candidates) == total
        n = total - before
        per_trial.append((reads[0] / n, transactions[0] / n, statements[0] / n))
    (_, small_tx, small_sql), (large_reads, large_tx, large_sql) = per_trial
    # One read after each evaluation, plus the results' and the run's start-up reads.
    assert large_reads <= 1.1, per_trial
    # A trial: create, read itself back, its held writes (at most three sends), its state, the read of the
    # study, a heartbeat; the start-up's study writes spread over the trials.
    assert large_tx <= 9 and large_tx <= small_tx + 0.1, per_trial
    assert large_sql <= small_sql * 1.1, per_trial  # each read fetches only new and unfinished trials


def test_shared_reads_ask_the_storage_once_between_refreshes(tmp_path):
    inner = optuna.storages.InMemoryStorage()
    calls = []
    read = inner.get_all_trials
    inner.get_all_trials = lambda *a, **k: calls.append(1) or read(*a, **k)
    shared = SharedReads(inner)
    study = optuna.create_study(storage=shared)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    before = len(calls)
    for _ in range(5):
        study.get_trials(deepcopy=False)
    assert len(calls) == before  # no new trial, no refresh: the snapshot serves
    shared.refresh()
    assert len(study.get_trials()) == 3 and len(calls) == before + 1


@pytest.mark.slow
def test_load_test_script_runs_two_workers_with_a_kill_and_reports(tmp_path, synthetic_table, tiny_checkpoint, budget):
    out = tmp_path / "load"
    argv = [sys.executable, str(ROOT / "scripts/load_test.py"), "--storage", "journal", "--workers", "2"]
    argv += ["--trials", "8", "--out", str(out), "--device", str(synthetic_table), "--budget", budget]
    argv += ["--", "--space", "tiny", "--data", "digits", "--checkpoint", str(tiny_checkpoint)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--sampler", "random"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] == 8 and summary["workers"] == 2
    assert summary["distinct_archs"] == 8 and summary["evaluated_twice"] == 0
    kills = [f for f in summary["faults"] if f["fault"] == "kill"]
    assert len(kills) == 1 and len(kills[0]["slots"]) == 1  # one of two workers killed, then restarted
    assert any(f["fault"] == "worker_restart" for f in summary["faults"])
    assert all("skipped" in f for f in summary["faults"] if f["fault"].startswith("db_"))  # a journal has no server
    assert summary["reads_per_trial"] > 0 and summary["trials_per_s"] > 0
    assert summary["round_trips_per_trial"] > 0 and 0 < summary["storage_share_of_trials"] < 1  # file reads, appends
    assert summary["round_trips_by_call_per_trial"]["get_all_trials"] > 0  # where the held writes go out
    assert set(summary["proposed_by"]) <= {BY_SEED, BY_SAMPLER, BY_ALTERNATIVE}
    assert '"complete": 8' in done.stdout and "summary:" in done.stdout


def test_a_worker_waits_for_an_unreachable_database_and_says_so(caplog):
    from sqlalchemy.exc import OperationalError

    inner = optuna.storages.InMemoryStorage()
    shared = SharedReads(inner, outage_s=30)
    study_id = shared.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")
    down = [2]
    create = inner.create_new_trial

    def flaky(*args):
        if down[0]:
            down[0] -= 1
            lost = OperationalError("INSERT", {}, Exception("connection refused"))
            raise optuna.exceptions.StorageInternalError("commit failed") from lost
        return create(*args)

    inner.create_new_trial = flaky
    with caplog.at_level("WARNING", logger="quadnas._search.shared_reads"):
        assert shared.create_new_trial(study_id) == 0
    said = [r.getMessage() for r in caplog.records if r.name == "quadnas._search.shared_reads"]
    assert len(said) == 2 and "storage unreachable (connection refused)" in said[0] and "reachable again" in said[1]
    inner.create_new_trial = lambda *a: (_ for _ in ()).throw(ValueError("bad"))
    with pytest.raises(ValueError):  # any other error is raised at once
        shared.create_new_trial(study_id)


def test_a_long_wait_for_the_database_says_so_again_then_gives_up(caplog, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import quadnas._search.shared_reads as shared_module

    clock = [0.0]
    monkeypatch.setattr(shared_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(shared_module.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    inner = optuna.storages.InMemoryStorage()
    shared = SharedReads(inner, outage_s=70)
    study_id = shared.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "s")

    def down(*args):
        lost = OperationalError("INSERT", {}, Exception("connection refused"))
        raise optuna.exceptions.StorageInternalError("commit failed") from lost

    inner.create_new_trial = down
    with (
        caplog.at_level("WARNING", logger="quadnas._search.shared_reads"),
        pytest.raises(optuna.exceptions.StorageInternalError),
    ):
        shared.create_new_trial(study_id)
    said = [r.getMessage() for r in caplog.records if r.name == "quadnas._search.shared_reads"]
    assert "storage unreachable" in said[0]
    assert [m.split(" after ")[1].split(";")[0] for m in said[1:]] == ["30 s", "60 s"]  # every 30 s, then the error


def test_a_retried_trial_takes_the_failed_ones_arch_and_says_so(tmp_path, synthetic_table, budget):
    config = tiny_search_config(tmp_path, synthetic_table, None, budget)
    space = SearchSpace.load("tiny")
    targets = Targets.load(config.devices, space)
    study = optuna.create_study(direction="maximize", sampler=guided_sampler(config, space, targets))
    objective = Objective(space, targets, lambda arch: 0.5, "constrained", -0.07, total=5)
    killed = study.ask()
    arch = objective.propose(killed)
    study.tell(killed, state=optuna.trial.TrialState.FAIL)  # as a worker's heartbeat check marks a killed one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.trials[0])
    study.optimize(objective, n_trials=1)
    retry = study.trials[1]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.user_attrs["arch"] == str(arch)
    assert retry.user_attrs["proposed_by"] == "retry"
