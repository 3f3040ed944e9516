"""A storage that batches a trial's writes and shares one read of the study per trial among its callers.

`SharedReads` wraps any Optuna storage: a running trial's parameters and attributes are sent in one
transaction, and the study's trials are read once per trial, not by every sampler and callback that asks.
The module is longer than our 400-line mark because Optuna's storage interface is one class and it
implements all of it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import optuna
from optuna import distributions
from optuna._typing import JSONSerializable
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import OperationalError, PendingRollbackError
from sqlalchemy.orm import Session

from quadnas._search.storage import HEARTBEAT_S

OUTAGE_S = 120  # how long a worker waits for an unreachable database before it gives up
NOTICE_S = 30  # how often a worker waiting for the database says it still waits

T = TypeVar("T")
_log = logging.getLogger(__name__)


@dataclass
class _Writes:
    """Writes to one running trial not sent to the storage yet, in the order Optuna would send them."""

    params: dict[str, tuple[float, BaseDistribution]] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, JSONSerializable] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.params or self.user_attrs or self.system_attrs)


class SharedReads(BaseStorage, BaseHeartbeat):
    """A storage that costs a trial one read of its study and a few transactions, at any study size.

    **Reads.** Within one trial the sampler, the objective and the callbacks each read every trial of the
    study, some several times (TPE with a constant liar reads once per proposal). Here the first read
    after `refresh()` asks the storage; the others reuse that snapshot, with this process's own trials
    as they stand after its writes. Optuna's cache under RDB storages then reads only trials that are
    new or unfinished, so one read of the study costs the same at any study size. The trials this
    process runs are read once, when they start; their later reads (Optuna reads a trial back after
    each constraint, to tell it, and for the callbacks) are served from that copy and the writes made
    since, since nothing else writes to a running trial but a stale-heartbeat check that fails it (a
    write then raises as it would have).

    **Writes.** A running trial's parameters and attributes are held and sent together, in one
    transaction on an RDB storage: at the next read of the study when they include new parameters (so
    another worker sees a proposal before this one checks it for twins), at the next read that asks the
    storage, and before the trial's state is set, never after. A worker killed meanwhile loses only
    writes of a trial that stays unfinished (on an RDB storage the heartbeat check fails it and a retry
    takes its parameters, as before). Other storages get the same writes one by one.

    **Stale trials** (a killed worker's, failed and retried through the heartbeat) are looked for at
    most once per `stale_check_s`, not before every trial; the grace period is longer anyway.

    **Outages.** A database restarted or stopped for a while (RDB storages) does not end the search:
    each call waits for it (`_call`). A write the database committed just as the connection dropped may
    then be made twice (a second trial created, say), which Optuna's heartbeat check does not always clear.
    """

    def __init__(
        self,
        storage: BaseStorage,
        outage_s: float = OUTAGE_S,
        rdb: RDBStorage | None = None,
        stale_check_s: float = HEARTBEAT_S,
    ):
        """`storage`: the storage to use (Optuna's cache over an RDB storage); `rdb`: the RDB storage below it,
        through which a trial's held writes go in one transaction (None: one call each)."""
        self.storage, self.outage_s, self.rdb, self.stale_check_s = storage, outage_s, rdb, stale_check_s
        self._snapshot: dict[int, list[FrozenTrial]] = {}  # study id -> its trials, by number
        self._own: dict[int, FrozenTrial | None] = {}  # trial id -> this process's trial (None: not read yet)
        self._study_of: dict[int, int] = {}  # trial id -> study id, of this process's trials
        self._held: dict[int, _Writes] = {}  # trial id -> writes not sent yet
        self._sent: dict[int, set[str]] = {}  # trial id -> the attributes sent so far ("user:KEY", "system:KEY")
        self._known: dict[int, dict[str, BaseDistribution]] = {}  # study id -> distribution of each param sent
        self._stale_checked: dict[int, float] = {}  # study id -> when its stale trials were last looked for
        self._lock = threading.RLock()

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

    # Reads of the study: one shared snapshot, with this process's trials as they stand.
    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = self._snapshot.get(study_id)
            self._send_held(study_id, everything=trials is None)
            if trials is None:
                trials = self._snapshot[study_id] = self._call(self.storage.get_all_trials, study_id, False)
                for trial_id, trial in list(self._own.items()):  # the read holds them as they are now
                    if trial is not None and trial.state.is_finished():
                        self._forget(trial_id)
            own = [t for i, t in self._own.items() if t is not None and self._study_of[i] == study_id]
            if own:
                trials = _overlaid(trials, own)
        chosen = trials if states is None else [t for t in trials if t.state in states]
        return copy.deepcopy(chosen) if deepcopy else list(chosen)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            if trial_id in self._own:
                trial = self._own[trial_id]
                if trial is None:
                    trial = self._own[trial_id] = copy.deepcopy(self._call(self.storage.get_trial, trial_id))
                return copy.deepcopy(trial)
        return self._call(self.storage.get_trial, trial_id)

    # A running trial's writes: held, then sent together.
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = self._call(self.storage.create_new_trial, study_id, template_trial)
        if template_trial is None:  # a trial this process runs (a template makes one for another worker, or a done one)
            with self._lock:
                self._own[trial_id], self._study_of[trial_id] = None, study_id
                self._sent[trial_id] = set()
        return trial_id

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        with self._lock:
            trial = self._running(trial_id)
            if trial is not None:
                self._held.setdefault(trial_id, _Writes()).params[param_name] = (param_value_internal, distribution)
                trial.params = {**trial.params, param_name: distribution.to_external_repr(param_value_internal)}
                trial.distributions = {**trial.distributions, param_name: distribution}
                return
        self._call(self.storage.set_trial_param, trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            trial = self._running(trial_id)
            if trial is not None:
                self._held.setdefault(trial_id, _Writes()).user_attrs[key] = value
                trial.user_attrs = {**trial.user_attrs, key: value}
                return
        self._call(self.storage.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        with self._lock:
            trial = self._running(trial_id)
            if trial is not None:
                self._held.setdefault(trial_id, _Writes()).system_attrs[key] = value
                trial.system_attrs = {**trial.system_attrs, key: value}
                return
        self._call(self.storage.set_trial_system_attr, trial_id, key, value)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._send(trial_id)
        self._call(self.storage.set_trial_intermediate_value, trial_id, step, intermediate_value)
        with self._lock:
            trial = self._own.get(trial_id)
            if trial is not None:
                trial.intermediate_values = {**trial.intermediate_values, step: intermediate_value}

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        self._send(trial_id)
        try:
            changed = self._call(self.storage.set_trial_state_values, trial_id, state, values)
        except UpdateFinishedTrialError:
            self._forget(trial_id)  # another worker failed it: its next read asks the storage
            raise
        if not changed:
            return False
        with self._lock:
            trial = self._own.get(trial_id)
            if trial is not None:
                trial.state, trial.values = state, None if values is None else list(values)
                if state.is_finished():
                    trial.datetime_complete = datetime.now()  # what the storages record, to the microsecond
        return True

    def _running(self, trial_id: int) -> FrozenTrial | None:
        """This process's copy of trial `trial_id`, if it runs it; raises as the storage would once it finished."""
        if trial_id not in self._own:
            return None
        trial = self._own[trial_id]
        if trial is None:
            self.get_trial(trial_id)  # reads it and keeps the copy
            trial = self._own[trial_id]
        assert trial is not None
        self.check_trial_is_updatable(trial_id, trial.state)
        return trial

    def _send_held(self, study_id: int, everything: bool) -> None:
        """Send the held writes of this process's trials in `study_id`: all of them, or those with new parameters."""
        for trial_id, writes in list(self._held.items()):
            if self._study_of.get(trial_id) == study_id and (everything or writes.params):
                self._send(trial_id)

    def _send(self, trial_id: int) -> None:
        with self._lock:
            writes = self._held.pop(trial_id, None)
            if not writes:
                return
            study_id = self._study_of[trial_id]
            known = self._known.setdefault(study_id, {})
            try:
                if self.rdb is not None:
                    self._call(_write_at_once, self.rdb, trial_id, writes, known, self._sent[trial_id])
                else:
                    self._write_one_by_one(trial_id, writes)
            except UpdateFinishedTrialError:
                self._forget(trial_id)
                raise
            known.update({name: distribution for name, (_, distribution) in writes.params.items()})

    def _write_one_by_one(self, trial_id: int, writes: _Writes) -> None:
        for name, (value, distribution) in writes.params.items():
            self._call(self.storage.set_trial_param, trial_id, name, value, distribution)
        for key, attr in writes.user_attrs.items():
            self._call(self.storage.set_trial_user_attr, trial_id, key, attr)
        for key, system_attr in writes.system_attrs.items():
            self._call(self.storage.set_trial_system_attr, trial_id, key, system_attr)

    def _forget(self, trial_id: int) -> None:
        self._sent.pop(trial_id, None)
        self._own.pop(trial_id, None)
        self._study_of.pop(trial_id, None)
        self._held.pop(trial_id, None)

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

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call(self.storage.get_trial_id_from_study_id_trial_number, study_id, trial_number)

    def remove_session(self) -> None:
        self.storage.remove_session()

    # Heartbeats, where the storage has them (RDB storages): a killed worker's trial is failed and retried.
    def record_heartbeat(self, trial_id: int) -> None:
        if isinstance(self.storage, BaseHeartbeat):
            self._call(self.storage.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if not isinstance(self.storage, BaseHeartbeat):
            return []
        now = time.monotonic()
        with self._lock:
            if now - self._stale_checked.get(study_id, -math.inf) < self.stale_check_s:
                return []
            self._stale_checked[study_id] = now
        return self._call(self.storage._get_stale_trial_ids, study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self.storage.get_heartbeat_interval() if isinstance(self.storage, BaseHeartbeat) else None

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        if isinstance(self.storage, BaseHeartbeat):
            return self.storage.get_heartbeat_stale_trial_callback()
        return None


def _overlaid(trials: list[FrozenTrial], own: list[FrozenTrial]) -> list[FrozenTrial]:
    """`trials` (by number) with `own` in the place of those of their numbers, and after them where new."""
    by_number = {t.number: t for t in own}
    merged = [by_number.pop(t.number, t) for t in trials]
    return merged + sorted(by_number.values(), key=lambda t: t.number) if by_number else merged


def _write_at_once(
    rdb: RDBStorage, trial_id: int, writes: _Writes, known: dict[str, BaseDistribution], sent: set[str]
) -> None:
    """`writes` to trial `trial_id` in one transaction on Optuna's RDB tables: the trial's state checked once
    (its row locked until the commit, so a stale-heartbeat check cannot fail it halfway), each new parameter's
    distribution checked against the study's (`known`, else Optuna's own look-up), the rows added together;
    an attribute updated where an earlier transaction sent it (`sent`, updated here once this one commits).

    Optuna's `set_trial_param` and `set_trial_*_attr` do the same one write at a time, each in a transaction
    of its own that reads the trial again: 18 parameters and 9 attributes cost a trial ~130 round trips."""
    with _create_scoped_session(rdb.scoped_session, True) as session, session.no_autoflush:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        rdb.check_trial_is_updatable(trial_id, trial.state)
        for name, (value, distribution) in writes.params.items():
            if name not in known:  # this process's first value of it: Optuna's step, with its look-up
                rdb._set_trial_param_without_commit(session, trial_id, name, value, distribution)
                continue
            distributions.check_distribution_compatibility(known[name], distribution)
            session.add(
                models.TrialParamModel(
                    trial_id=trial_id,
                    param_name=name,
                    param_value=value,
                    distribution_json=distributions.distribution_to_json(distribution),
                )
            )
        _put_attributes(session, models.TrialUserAttributeModel, trial_id, writes.user_attrs, sent, "user")
        _put_attributes(session, models.TrialSystemAttributeModel, trial_id, writes.system_attrs, sent, "system")
    sent.update(f"user:{key}" for key in writes.user_attrs)
    sent.update(f"system:{key}" for key in writes.system_attrs)


def _put_attributes(
    session: Session,
    model: type[models.TrialUserAttributeModel | models.TrialSystemAttributeModel],
    trial_id: int,
    attrs: Mapping[str, Any],
    sent: set[str],
    kind: str,
) -> None:
    """Add trial `trial_id`'s attributes `attrs` in `session`, or update those sent before (`sent`, as `KIND:KEY`)."""
    again = [key for key in attrs if f"{kind}:{key}" in sent]
    stored = {a.key: a for a in model.where_trial_id(trial_id, session)} if again else {}
    for key, value in attrs.items():
        if key in stored:
            stored[key].value_json = json.dumps(value)
        else:
            session.add(model(trial_id=trial_id, key=key, value_json=json.dumps(value)))


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
    already), with one shared read of the study per trial and a trial's writes sent together (`SharedReads`)."""
    return SharedReads(optuna.storages.get_storage(storage), rdb=storage if isinstance(storage, RDBStorage) else None)
