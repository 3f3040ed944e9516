"""`SharedReads` holds a running trial's writes and sends them together; it serves the trial's reads from its copy."""

import os
import threading
import warnings

import optuna
import pytest
from sqlalchemy import event

from quadnas._search.shared_reads import SharedReads, shared_reads
from quadnas._search.storage import open_storage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def rdb_url(request, tmp_path):
    """An RDB URL with no study of this test's name in it: a SQLite file, or the test PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'writes.db'}"
        return
    url = os.environ.get("QUADNAS_TEST_POSTGRES")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets QUADNAS_TEST_POSTGRES")
    yield url
    optuna.delete_study(study_name=f"w-{os.getpid()}-{tmp_path.name}", storage=url)


def _counting_transactions(storage: SharedReads) -> list[int]:
    """[transactions that ran a statement] on the RDB storage below `storage` in this thread (not the heartbeat's),
    counted from now on."""
    count = [0]
    assert storage.rdb is not None

    def statement(conn, *_):
        if threading.current_thread() is threading.main_thread():
            conn.info["wrote"] = True

    def commit(conn):
        count[0] += conn.info.pop("wrote", False)

    event.listen(storage.rdb.engine, "before_cursor_execute", statement)
    event.listen(storage.rdb.engine, "commit", commit)
    return count


def test_a_trials_writes_go_together_before_the_other_workers_read_and_before_its_state(rdb_url, tmp_path):
    name = f"w-{os.getpid()}-{tmp_path.name}"
    storage = shared_reads(open_storage(rdb_url))
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    other = optuna.load_study(study_name=name, storage=rdb_url)  # another worker, with a storage of its own
    transactions = _counting_transactions(storage)
    seen: dict[str, object] = {}

    def objective(trial: optuna.Trial) -> float:
        transactions[0] = 0
        params = {f"p{i}": trial.suggest_categorical(f"p{i}", ["a", "b", "c"]) for i in range(6)}
        trial.set_user_attr("arch", "-".join(params.values()))
        trial.set_constraint("latency", -0.5)
        seen["held"] = other.get_trials()[0].params, transactions[0]
        trial.study.get_trials(deepcopy=False)  # a read of the study sends the new proposal first
        written = other.get_trials()[0]
        seen["sent"] = written.params, written.user_attrs, transactions[0]
        trial.set_user_attr("accuracy", 0.5)
        return 0.5

    study.optimize(objective, n_trials=1)
    (held, held_tx), (sent, sent_attrs, sent_tx) = seen["held"], seen["sent"]
    assert held == {} and held_tx == 0  # six parameters, an attribute, a constraint: nothing sent yet
    assert len(sent) == 6 and sent_attrs == {"arch": "-".join(sent.values())} and sent_tx == 1  # in one transaction
    stored = other.get_trials()[0]
    assert stored.state == optuna.trial.TrialState.COMPLETE and stored.user_attrs["accuracy"] == 0.5
    assert stored.system_attrs["constraints:latency"] == -0.5
    own = storage.get_trial(stored._trial_id)  # this worker's copy, not read back
    for name in ("params", "distributions", "user_attrs", "system_attrs", "state", "values", "number"):
        assert getattr(own, name) == getattr(stored, name), name


def test_a_trial_reads_itself_from_the_storage_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'own.db'}"
    storage = shared_reads(open_storage(url))
    reads = []
    get_trial = storage.storage.get_trial
    storage.storage.get_trial = lambda trial_id: reads.append(trial_id) or get_trial(trial_id)  # type: ignore[method-assign]
    study = optuna.create_study(storage=storage, direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("p", ["a", "b"])
        trial.set_constraint("latency", -1.0)  # reads the trial's system attributes back
        assert trial.constraints == {"latency": -1.0}
        return 1.0

    study.optimize(objective, n_trials=3, callbacks=[lambda s, t: None])  # a callback gets the trial read back
    assert len(reads) == 3  # once per trial, when it starts


def test_a_write_to_a_trial_another_worker_failed_raises_as_it_would_have(tmp_path):
    url = f"sqlite:///{tmp_path / 'stale.db'}"
    storage = shared_reads(open_storage(url))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    raw = open_storage(url)
    raised = []

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("p", ["a", "b"])
        raw.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)  # a stale-heartbeat check
        storage.refresh()
        try:
            trial.study.get_trials()  # sends the held parameter
        except optuna.exceptions.UpdateFinishedTrialError:
            raised.append(True)
            raise
        return 1.0

    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):  # as a write straight to the storage
        study.optimize(objective, n_trials=1)
    assert raised and study.trials[0].state == optuna.trial.TrialState.FAIL


def test_a_journal_gets_the_held_writes_one_by_one(tmp_path):
    storage = shared_reads(open_storage(str(tmp_path / "journal.log")))
    study = optuna.create_study(storage=storage, study_name="j", direction="maximize")
    study.optimize(lambda t: float(t.suggest_categorical("p", [1, 2]) + len(t.set_user_attr("a", 1) or "")), 4)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    stored = optuna.load_study(
        study_name="j", storage=JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    )
    assert [t.state for t in stored.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert all(t.user_attrs == {"a": 1} and "p" in t.params for t in stored.trials)


def test_stale_trials_are_looked_for_at_most_once_per_interval(monkeypatch):
    import quadnas._search.shared_reads as shared_module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        inner = optuna.storages.RDBStorage("sqlite://", heartbeat_interval=10, grace_period=30)
    asked = []
    inner._get_stale_trial_ids = lambda study_id: asked.append(study_id) or []  # type: ignore[method-assign]
    clock = [100.0]
    monkeypatch.setattr(shared_module.time, "monotonic", lambda: clock[0])
    shared = SharedReads(inner, stale_check_s=10)
    for step in (0, 3, 9.9, 10.1, 12):
        clock[0] = 100.0 + step
        shared._get_stale_trial_ids(0)
    assert len(asked) == 2  # at 0 s and at 10.1 s


def test_an_attribute_sent_twice_keeps_its_last_value(tmp_path):
    url = f"sqlite:///{tmp_path / 'again.db'}"
    storage = shared_reads(open_storage(url))
    study = optuna.create_study(storage=storage, study_name="a", direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("stage", "proposed")
        storage.refresh()
        trial.study.get_trials()  # a read that asks the storage sends what is held
        trial.set_user_attr("stage", "evaluated")
        return 1.0

    study.optimize(objective, n_trials=2)
    stored = optuna.load_study(study_name="a", storage=url).trials
    assert [t.user_attrs for t in stored] == [{"stage": "evaluated"}] * 2
