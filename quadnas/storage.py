"""Optuna storages: SQLite by default, any RDB URL, or a journal file for many workers."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from quadnas.errors import QuadnasError

HEARTBEAT_S = 10
GRACE_S = 30


def default_storage_url(study_dir: Path) -> str:
    """SQLite file inside the study's run folder."""
    study_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(study_dir / 'study.db').resolve()}"


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """An RDB URL (`sqlite:///…`, `postgresql://…`, `mysql://…`) or a journal file path.

    RDB storages send heartbeats, so a trial of a killed worker is marked failed and
    retried once by the next worker instead of staying RUNNING forever.
    """
    if "://" in spec:
        try:
            return RDBStorage(
                spec,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                failed_trial_callback=RetryFailedTrialCallback(max_retry=1),
                engine_kwargs={"pool_pre_ping": True} if not spec.startswith("sqlite") else None,
            )
        except Exception as e:  # SQLAlchemy raises many types: driver missing, refused, bad URL
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise QuadnasError(
                f"cannot open storage '{spec}': {reason[:200]} — check the URL, that the server runs "
                f"and its driver is installed (PostgreSQL: pip install "quadnas[postgres]")"
            ) from None
    path = Path(spec)
    if path.is_dir() or not path.parent.exists():
        raise QuadnasError(
            f"cannot open journal storage '{spec}': give a file path in an existing folder "
            f"(e.g. runs/my-study/journal.log) or an RDB URL such as sqlite:///study.db"
        )
    return JournalStorage(JournalFileBackend(str(path)))
