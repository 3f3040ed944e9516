"""Optuna storages: SQLite by default, any RDB URL, or a journal file for many workers."""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna._typing import JSONSerializable
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError, OperationalError, PendingRollbackError

from quadnas.errors import QuadnasError

HEARTBEAT_S = 10
GRACE_S = 30
OUTAGE_S = 120  # how long a worker waits for an unreachable database before it gives up
NOTICE_S = 30  # how often a worker waiting for the database says it still waits

T = TypeVar("T")
_log = logging.getLogger(__name__)


def default_storage_url(study_dir: Path) -> str:
    """SQLite file inside the study's run folder."""
    study_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Write-ahead log with `synchronous=NORMAL`: a commit no longer waits for the disk twice (a trial
    commits ~60 times), and a killed process still loses no committed trial; only an OS crash or
    power loss can drop the last commits. Needs a local filesystem (SQLite's WAL does not work on
    network ones: use a journal file there)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _rdb_storage(url: str, attempts: int = 3) -> RDBStorage:
    """Workers that start together race to create the schema; the loser retries once it exists."""
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental; they are what we need
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
                    engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
                )
            if url.startswith("sqlite"):
                event.listen(storage.engine, "connect", _fast_sqlite)
                storage.engine.dispose()  # connections opened while creating the schema reconnect with it
            return storage
        except (ImportError, ValueError, ArgumentError):
            raise  # a missing driver or a malformed URL does not heal by waiting
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """An RDB URL (`sqlite:///…`, `postgresql://…`, `mysql://…`) or a journal file path.

    RDB storages send heartbeats, so a trial of a killed worker is marked failed and
    retried once by the next worker instead of staying RUNNING forever.
    """
    if "://" in spec:
        try:
            return _rdb_storage(spec)
        except Exception as e:  # SQLAlchemy raises many types: driver missing, refused, bad URL
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise QuadnasError(
                f"cannot open storage '{spec}': {reason[:200]} — check the URL, that the server runs "
                f"and its driver is installed (PostgreSQL: pip install 'quadnas[postgres]')"
            ) from None
    path = Path(spec)
    if path.is_dir() or not path.parent.exists():
        raise QuadnasError(
            f"cannot open journal storage '{spec}': give a file path in an existing folder "
            f"(e.g. runs/my-study/journal.log) or an RDB URL such as sqlite:///study.db"
        )
    return JournalStorage(JournalFileBackend(str(path)))


class SharedReads(BaseStorage, BaseHeartbeat):
    """A storage whose reads of a study's trials share one snapshot between refreshes.

    Within one trial the sampler, the objective and the callbacks each read every trial of the
    study, some several times (TPE with a constant liar reads once per proposal). Here the first
    read after `create_new_trial` or `refresh()` asks the storage; the others reuse it. Optuna's own
    cache under RDB storages then reads only trials that are new or unfinished, so a trial costs
    one incremental read of the study, not several, at any study size. Writes and single-trial reads
    go straight to the storage (a trial reads back its own parameters fresh); the snapshot may lag
    this process's own writes until the next refresh, which nothing here depends on.

    A database restarted or stopped for a while (RDB storages) does not end the search: each call
    waits for it (`_call`). A write the database committed just as the connection dropped may then be
    made twice (a second trial created, say), which Optuna's heartbeat check does not always clear.
    """

    def __init__(self, storage: BaseStorage, outage_s: float = OUTAGE_S):
        self.storage, self.outage_s = storage, outage_s
        self._snapshot: dict[int, list[FrozenTrial]] = {}  # study id -> its trials, by number
        self._lock = threading.Lock()

    def _call(self, method: Callable[..., T], *args: Any) -> T:
        """`method(*args)`; while the database cannot be reached, the call is tried again every
        second for up to `outage_s`, said in one line when the wait starts, one every `NOTICE_S` while it
        lasts and one when it ends."""
        waited_since = next_notice = None
        while True:
            try:
                result = method(*args)
            except Exception as e:
                reason = _unreachable(e)
                if reason is None:
                    raise
                now = time.monotonic()
                self.storage.remove_session()  # a session whose connection broke must be discarded
                if waited_since is None or next_notice is None:
                    waited_since, next_notice = now, now + NOTICE_S
                    _log.warning(f"storage unreachable ({reason}): retrying every second for up to {self.outage_s:g} s")
                elif now - waited_since > self.outage_s:
                    raise
                elif now >= next_notice:
                    next_notice = now + NOTICE_S
                    _log.warning(
                        f"storage still unreachable ({reason}) after {now - waited_since:.0f} s; "
                        f"giving up after {self.outage_s:g} s"
                    )
                time.sleep(1.0)
                continue
            if waited_since is not None:
                _log.warning(f"storage reachable again after {time.monotonic() - waited_since:.0f} s")
            return result

    def refresh(self) -> None:
        """The next read of trials asks the storage again."""
        with self._lock:
            self._snapshot.clear()

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = self._snapshot.get(study_id)
            if trials is None:
                trials = self._snapshot[study_id] = self._call(self.storage.get_all_trials, study_id, False)
        chosen = trials if states is None else [t for t in trials if t.state in states]
        return copy.deepcopy(chosen) if deepcopy else list(chosen)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self.refresh()
        return self._call(self.storage.create_new_trial, study_id, template_trial)

    # Everything else is the storage's own.
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._call(self.storage.create_new_study, directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._call(self.storage.delete_study, study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(self.storage.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        self._call(self.storage.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call(self.storage.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call(self.storage.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call(self.storage.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self.storage.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self.storage.get_study_system_attrs, study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._call(self.storage.get_all_studies)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self._call(self.storage.set_trial_param, trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call(self.storage.get_trial_id_from_study_id_trial_number, study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self._call(self.storage.set_trial_state_values, trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._call(self.storage.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call(self.storage.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        self._call(self.storage.set_trial_system_attr, trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call(self.storage.get_trial, trial_id)

    def remove_session(self) -> None:
        self.storage.remove_session()

    # Heartbeats, where the storage has them (RDB storages): a killed worker's trial is failed and retried.
    def record_heartbeat(self, trial_id: int) -> None:
        if isinstance(self.storage, BaseHeartbeat):
            self._call(self.storage.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if isinstance(self.storage, BaseHeartbeat):
            return self._call(self.storage._get_stale_trial_ids, study_id)
        return []

    def get_heartbeat_interval(self) -> int | None:
        return self.storage.get_heartbeat_interval() if isinstance(self.storage, BaseHeartbeat) else None

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        if isinstance(self.storage, BaseHeartbeat):
            return self.storage.get_heartbeat_stale_trial_callback()
        return None


def _unreachable(error: BaseException) -> str | None:
    """The first line of a lost or refused database connection's error; None for any other error."""
    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else error
    if isinstance(cause, PendingRollbackError):  # the session of a connection that broke mid-transaction
        return "connection lost mid-transaction"
    if not isinstance(cause, OperationalError):
        return None
    return (str(cause.orig or cause).strip().splitlines() or [type(cause).__name__])[0][:160]


def shared_reads(storage: BaseStorage) -> SharedReads:
    """`storage` behind Optuna's cache of finished trials (RDB storages; a journal reads only new lines
    already), with one shared read of the study per trial (`SharedReads`)."""
    return SharedReads(optuna.storages.get_storage(storage))
