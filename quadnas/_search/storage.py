"""Optuna storages: SQLite by default, any RDB URL, or a journal file for many workers."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy import event
from sqlalchemy.exc import ArgumentError

from quadnas.errors import QuadnasError

HEARTBEAT_S = 10
GRACE_S = 30


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
