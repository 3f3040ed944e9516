"""Load test: N workers share one study of T trials, with faults; counts, throughput and storage reads.

Each worker runs `quadnas -q search --device vpu --budget 30ms --storage URL --study S --trials T`
(through this script's `--worker` mode, which counts the storage calls it makes and writes them
to a file every second, so a worker killed with kill -9 loses at most its last second of counts).

Faults (`--faults`, on by default), by the study's progress:
  at 20 % of T   kill -9 of two workers (one worker when N < 4), each restarted 2 s later;
  at 45 % of T   the database restarted (PostgreSQL only);
  at 70 % of T   the database stopped for 10 s, then started (PostgreSQL only).
SQLite and the journal file have no server: their database faults do not apply (the JSON says so).
A worker that exits with an error before the study is done is restarted 1 s later, as a scheduler
would (`--no-replace`: not); the JSON lists every exit.

    python scripts/load_test.py --storage postgresql --workers 8 --trials 1000
    python scripts/load_test.py --storage journal --workers 2 --trials 20 --no-faults -- --space tiny ...

`--storage`: `sqlite`, `journal` or `postgresql` (a fresh study; SQLite and journal files under --out; PostgreSQL
from .ci/postgres.sh unless --postgres-url names a server, whose cluster --pg-cluster "VERSION NAME" restarts).
Arguments after `--` go to every worker's `quadnas search`. Writes --out/summary.json and prints a summary;
`python scripts/load_test.py --tabulate OUT...` prints a markdown table of several runs; `--tabulate-cost LABEL=OUT...`
one of the storage's cost per trial (database round trips, reads of the study, its share of a trial's time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
READS = ("get_all_trials", "get_trial", "get_study_", "get_all_studies", "get_best_trial", "get_n_trials", "get_trial_")


# ----------------------------------------------------------------------------------------------------------------
# Worker mode: count storage calls, then run the quadnas CLI.


class _Counts:
    """Storage calls of this process: the calls quadnas makes (`SharedReads`, timed at the outermost call), the
    calls that reach Optuna's storage below it, and the database round trips each quadnas call causes.

    Round trips (PostgreSQL's count; SQLite's are calls into the library): every SQL statement, the BEGIN and
    COMMIT (or ROLLBACK) of each transaction that ran a statement, and each pool pre-ping; for a journal file,
    each read or append of the file. They are attributed to the quadnas storage call that caused them
    (`record_heartbeat`: the heartbeat thread). `trials` holds one row per trial this worker finished: its
    storage id, time, state, and the reads, round trips, storage seconds and wall seconds since the previous
    one finished (or the worker started).
    """

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        self.calls: Counter[str] = Counter()  # calls reaching Optuna's storage (below quadnas's SharedReads)
        self.quadnas_calls: Counter[str] = Counter()  # calls quadnas made (SharedReads methods)
        self.quadnas_seconds: dict[str, float] = {}  # their seconds, by method
        self.sql: Counter[str] = Counter()
        self.round_trips: Counter[str] = Counter()  # by the quadnas storage call that caused them
        self.storage_s = 0.0
        self.depth = threading.local()
        self.outer = threading.local()  # the SharedReads call running in this thread, if any
        self.started = time.time()
        self.trials: list[dict[str, Any]] = []
        self._last = {"reads": 0, "round_trips": 0, "heartbeat": 0, "storage_s": 0.0, "t": time.time()}

    def reads(self) -> int:
        """Storage reads: SELECT statements for an RDB, log reads for a journal file."""
        return self.sql["SELECT"] + self.calls["journal.read_logs"]

    def trip(self, n: int = 1) -> None:
        with self.lock:
            self.round_trips[getattr(self.outer, "name", None) or "other"] += n

    def finished(self, trial_id: int, state: str) -> None:
        now, reads = time.time(), self.reads()
        with self.lock:
            heartbeat = self.round_trips["record_heartbeat"]
            trips = sum(self.round_trips.values()) - heartbeat
            self.trials.append(
                {
                    "trial_id": trial_id,
                    "at": now,
                    "state": state,
                    "reads": reads - self._last["reads"],
                    "round_trips": trips - self._last["round_trips"],
                    "heartbeat_round_trips": heartbeat - self._last["heartbeat"],
                    "storage_s": round(self.storage_s - self._last["storage_s"], 5),
                    "wall_s": round(now - self._last["t"], 5),
                }
            )
            self._last = {
                "reads": reads,
                "round_trips": trips,
                "heartbeat": heartbeat,
                "storage_s": self.storage_s,
                "t": now,
            }

    def dump(self) -> None:
        with self.lock:
            data = {
                "pid": os.getpid(),
                "started": self.started,
                "now": time.time(),
                "calls": dict(self.calls),
                "quadnas_calls": dict(self.quadnas_calls),
                "quadnas_seconds": {k: round(v, 4) for k, v in self.quadnas_seconds.items()},
                "sql": dict(self.sql),
                "round_trips": dict(self.round_trips),
                "storage_s": round(self.storage_s, 4),
                "trials": list(self.trials),
            }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


def _instrument(counts: _Counts) -> None:
    """Wrap quadnas's storage (`SharedReads`: named, timed once at the outermost call), the Optuna storage calls
    below it (counted), SQL execution, transactions, pool pre-pings and journal-file reads and appends."""
    import functools

    import optuna
    from optuna.storages import BaseStorage
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.storages.journal import JournalFileBackend
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.engine.default import DefaultDialect

    from quadnas._search.shared_reads import SharedReads

    def outermost(method: Any, name: str) -> Any:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(counts.outer, "name", None) is not None:
                return method(*args, **kwargs)
            counts.outer.name = name
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                counts.outer.name = None
                with counts.lock:
                    counts.quadnas_calls[name] += 1
                    counts.quadnas_seconds[name] = counts.quadnas_seconds.get(name, 0.0) + time.perf_counter() - start
                    if name != "record_heartbeat":  # the heartbeat thread does not hold a trial up
                        counts.storage_s += time.perf_counter() - start
                if name == "set_trial_state_values":  # Optuna's stale-trial check passes the state by keyword
                    state = args[2] if len(args) > 2 else kwargs["state"]
                    if state.is_finished():
                        counts.finished(args[1], state.name)

        return timed

    for name, member in list(vars(SharedReads).items()):
        if callable(member) and (not name.startswith("_") or name == "_get_stale_trial_ids"):
            setattr(SharedReads, name, outermost(member, name))

    classes = (optuna.storages.RDBStorage, optuna.storages.JournalStorage, _CachedStorage)
    for cls in classes:
        for name in dir(BaseStorage):
            if name.startswith("_") or name not in cls.__dict__ or not callable(cls.__dict__[name]):
                continue

            def wrap(method: Any, name: str = name) -> Any:
                @functools.wraps(method)
                def counted(*args: Any, **kwargs: Any) -> Any:
                    depth = getattr(counts.depth, "n", 0)
                    counts.depth.n = depth + 1
                    try:
                        return method(*args, **kwargs)
                    finally:
                        counts.depth.n = depth
                        if depth == 0:
                            counts.calls[name] += 1

                return counted

            setattr(cls, name, wrap(cls.__dict__[name]))

    read_logs, append_logs = JournalFileBackend.read_logs, JournalFileBackend.append_logs

    def counted_read_logs(self: Any, log_number_from: int) -> Any:
        counts.calls["journal.read_logs"] += 1
        counts.trip()
        return read_logs(self, log_number_from)

    def counted_append_logs(self: Any, logs: Any) -> None:
        counts.calls["journal.append_logs"] += 1
        counts.trip()
        append_logs(self, logs)

    JournalFileBackend.read_logs = counted_read_logs  # type: ignore[method-assign]
    JournalFileBackend.append_logs = counted_append_logs  # type: ignore[method-assign]

    @event.listens_for(Engine, "before_cursor_execute")
    def count_sql(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counts.sql[statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"] += 1
        if not conn.info.get("in_transaction"):
            conn.info["in_transaction"] = True
            counts.trip()  # the BEGIN the driver sends before a transaction's first statement
        counts.trip()

    def ended(conn: Any) -> None:
        if conn.info.pop("in_transaction", False):
            counts.trip()  # its COMMIT or ROLLBACK

    event.listen(Engine, "commit", ended)
    event.listen(Engine, "rollback", ended)
    ping = DefaultDialect._do_ping_w_event

    def counted_ping(self: Any, dbapi_connection: Any) -> bool:
        counts.trip()
        return ping(self, dbapi_connection)

    DefaultDialect._do_ping_w_event = counted_ping  # type: ignore[method-assign]


def worker_main(out: Path, argv: list[str]) -> int:
    counts = _Counts(out)
    _instrument(counts)

    def flush() -> None:
        while True:
            time.sleep(1.0)
            counts.dump()

    threading.Thread(target=flush, daemon=True).start()
    from quadnas.cli import main

    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    counts.dump()
    return int(code or 0)


# ----------------------------------------------------------------------------------------------------------------
# Driver mode.


def _postgres(args: argparse.Namespace, out: Path) -> tuple[str, list[str] | None]:
    """The server's URL, and its cluster's `pg_ctlcluster` arguments for the faults."""
    if args.postgres_url:
        base = args.postgres_url
    else:
        started = subprocess.run(["bash", str(ROOT / ".ci/postgres.sh")], capture_output=True, text=True)
        base = started.stdout.strip()
        if not base:
            raise SystemExit(f"no PostgreSQL server could be started: {started.stderr.strip()[-300:]}")
        if not args.pg_cluster:
            version = sorted(os.listdir("/usr/lib/postgresql"), key=int)[-1]
            args.pg_cluster = f"{version} main"
    url = base  # each run is a fresh study (--study) in that database
    cluster = args.pg_cluster.split() if args.pg_cluster else None
    return url, cluster


def _storage(args: argparse.Namespace, out: Path) -> tuple[str, list[str] | None]:
    if args.storage == "sqlite":
        return f"sqlite:///{(out / 'study.db').resolve()}", None
    if args.storage == "journal":
        return str((out / "journal.log").resolve()), None
    return _postgres(args, out)


class Fleet:
    """The worker processes: start, kill -9, restart; each process's counts land in its own file."""

    def __init__(self, out: Path, argv: list[str], env: dict[str, str]):
        self.out, self.argv, self.env = out, argv, env
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.runs = 0
        self.logs: list[Path] = []
        self.exits: list[dict[str, Any]] = []

    def start(self, slot: int) -> None:
        self.runs += 1
        counts = self.out / f"worker{slot}-run{self.runs}.json"
        log = self.out / f"worker{slot}-run{self.runs}.log"
        self.logs.append(log)
        with log.open("wb") as stream:
            self.procs[slot] = subprocess.Popen(
                [sys.executable, __file__, "--worker", str(counts), "--", *self.argv],
                stdout=stream,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
            )

    def kill(self, slot: int) -> None:
        proc = self.procs.pop(slot)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.exits.append({"slot": slot, "rc": -9, "killed": True})

    def poll(self) -> list[tuple[int, int]]:
        """(slot, exit code) of each worker that exited since the last poll; recorded in `exits`."""
        ended = []
        for slot, proc in list(self.procs.items()):
            rc = proc.poll()
            if rc is not None:
                ended.append((slot, rc))
                self.exits.append({"slot": slot, "rc": rc, "killed": False})
                del self.procs[slot]
        return ended


class Monitor:
    """Trials per state, read by the driver with one small query (RDB) or the journal's new lines; not counted
    as a worker's read."""

    def __init__(self, url: str, study: str):
        self.url, self.study = url, study
        self.engine: Any = None
        self.journal: Any = None

    def states(self) -> dict[str, int]:
        if "://" in self.url:
            import sqlalchemy as sa

            if self.engine is None:
                self.engine = sa.create_engine(self.url, pool_pre_ping=True)
            query = sa.text(
                "SELECT t.state, count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "WHERE s.study_name = :name GROUP BY t.state"
            )
            with self.engine.connect() as connection:
                return {str(state).split(".")[-1]: n for state, n in connection.execute(query, {"name": self.study})}
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        if not Path(self.url).exists():
            return {}
        if self.journal is None:
            self.journal = JournalStorage(JournalFileBackend(self.url))
        try:
            study_id = self.journal.get_study_id_from_name(self.study)
        except KeyError:
            return {}
        return dict(Counter(t.state.name for t in self.journal.get_all_trials(study_id, deepcopy=False)))


def _pg(cluster: list[str], action: str) -> float:
    start = time.perf_counter()
    subprocess.run(["pg_ctlcluster", *cluster, action], check=True, capture_output=True)
    return time.perf_counter() - start


def drive(args: argparse.Namespace, extra: list[str]) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    url, cluster = _storage(args, out)
    study = args.study or f"load-{uuid.uuid4().hex[:6]}"
    argv = ["-q", "search", "--device", args.device, "--budget", args.budget]
    argv += ["--storage", url, "--study", study, "--trials", str(args.trials), *extra]
    fleet = Fleet(out, argv, dict(os.environ))
    load_before = os.getloadavg()
    start = time.time()
    for slot in range(args.workers):
        fleet.start(slot)
    faults: list[dict[str, Any]] = []
    db_faults = cluster is not None
    pending = (
        [(0.20, "kill"), (0.45, "db_restart"), (0.70, "db_stop_10s")] if args.faults else []
    )  # (fraction of T complete, fault)
    respawn: list[tuple[float, int]] = []  # (when, slot)
    states: dict[str, int] = {}
    deadline = start + args.timeout
    failed_to_read = 0
    loads = [os.getloadavg()]
    monitor = Monitor(url, study)
    while True:
        time.sleep(1.0)
        if int(time.time() - start) % 15 == 0:
            loads.append(os.getloadavg())
        try:
            states = monitor.states()
        except Exception:
            failed_to_read += 1  # the database is down: a fault
        done = states.get("COMPLETE", 0)
        now = time.time()
        for when, slot in [r for r in respawn if r[0] <= now]:
            respawn.remove((when, slot))
            fleet.start(slot)
            faults.append({"t": round(now - start, 1), "fault": "worker_restart", "slot": slot, "complete": done})
        ended = fleet.poll()
        if pending and done >= pending[0][0] * args.trials:
            _, fault = pending.pop(0)
            entry: dict[str, Any] = {"t": round(now - start, 1), "fault": fault, "complete": done}
            if fault == "kill":
                slots = sorted(fleet.procs)[-(2 if args.workers >= 4 else 1) :]
                for slot in slots:
                    fleet.kill(slot)
                    respawn.append((now + 2.0, slot))
                entry["slots"] = slots
            elif not db_faults:
                entry["skipped"] = f"no database server to {fault.split('_')[1]} with {args.storage}"
            elif fault == "db_restart":
                entry["seconds"] = round(_pg(cluster or [], "restart"), 2)
            else:
                _pg(cluster or [], "stop")
                time.sleep(10)
                _pg(cluster or [], "start")
            faults.append(entry)
        if ended and done < args.trials and not args.no_replace:
            for slot, rc in ended:  # a worker that fails before the study is done is replaced, as a scheduler would
                if rc != 0:
                    respawn.append((now + 1.0, slot))
        if not fleet.procs and not respawn:
            break
        if now > deadline:
            for slot in list(fleet.procs):
                fleet.kill(slot)
            faults.append({"t": round(now - start, 1), "fault": "timeout", "complete": done})
            break
    wall = time.time() - start
    return summarize(args, out, url, study, fleet, faults, wall, load_before, loads, failed_to_read)


def _worker_files(out: Path) -> list[dict[str, Any]]:
    files = []
    for path in sorted(out.glob("worker*-run*.json")):
        try:
            files.append({"file": path.name, **json.loads(path.read_text())})
        except (OSError, ValueError):
            continue
    return files


def _study_trials(url: str, study: str) -> list[Any]:
    import optuna

    if "://" in url:
        storage: Any = url
    else:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        storage = JournalStorage(JournalFileBackend(url))
    return optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)


def summarize(
    args: argparse.Namespace,
    out: Path,
    url: str,
    study: str,
    fleet: Fleet,
    faults: list[dict[str, Any]],
    wall: float,
    load_before: tuple[float, float, float],
    loads: list[tuple[float, float, float]],
    failed_to_read: int,
) -> dict[str, Any]:
    trials = _study_trials(url, study)
    by_state = Counter(t.state.name for t in trials)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    archs = [t.user_attrs.get("arch") for t in complete]
    feasible = [t for t in complete if t.user_attrs.get("feasible")]
    evaluated = [t for t in complete if t.user_attrs.get("evaluated") and "reused_from" not in t.user_attrs]
    proposed_by = Counter(str(t.user_attrs.get("proposed_by", "sampler")) for t in complete)
    pruned_why = Counter(
        "surplus" if t.user_attrs.get("surplus") else "duplicate" if "duplicate_of" in t.user_attrs else "other"
        for t in trials
        if t.state.name == "PRUNED"
    )
    starts = [t.datetime_start.timestamp() for t in complete if t.datetime_start]
    ends = [t.datetime_complete.timestamp() for t in complete if t.datetime_complete]
    span = (max(ends) - min(starts)) if starts and ends else float("nan")

    workers = _worker_files(out)
    rows = [row for w in workers for row in w["trials"]]
    finished = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED", "FAIL")]
    reads = sum(w["sql"].get("SELECT", 0) + w["calls"].get("journal.read_logs", 0) for w in workers)
    storage_s = sum(w["storage_s"] for w in workers)
    busy_s = sum(w["now"] - w["started"] for w in workers)

    finished.sort(key=lambda r: r["at"])  # every worker's finished trials in the order they finished
    # A worker process's first trial also holds its start-up (loading the supernet): left out of the per-trial
    # round trips and of the storage's share of a trial.
    firsts = {(w["file"], w["trials"][0]["trial_id"]) for w in workers if w["trials"]}
    steady = [r for w in workers for r in w["trials"][1:] if r["state"] in ("COMPLETE", "PRUNED", "FAIL")]
    steady.sort(key=lambda r: r["at"])
    by_call = sum((Counter(w.get("round_trips", {})) for w in workers), Counter())

    def halves(key: str, rows: list[dict[str, Any]] = finished) -> list[float | None]:
        """Mean per finished trial over the study's first and second half of finished trials."""
        half = len(rows) // 2
        parts = [[r[key] for r in rows[:half]], [r[key] for r in rows[half:]]]
        return [round(sum(p) / len(p), 4) if p else None for p in parts]

    def per_steady_trial(key: str) -> float | None:
        return round(sum(r.get(key, 0) for r in steady) / len(steady), 2) if steady else None

    last_tenth = [r for r in finished[len(finished) - max(1, len(finished) // 10) :] if r["wall_s"] > 0]
    per_worker = {}
    for w in workers:
        n = sum(r["state"] == "COMPLETE" for r in w["trials"])
        seconds = w["now"] - w["started"]
        per_worker[w["file"]] = {"complete": n, "seconds": round(seconds, 1), "trials_per_s": round(n / seconds, 3)}
    summary = {
        "storage": args.storage,
        "workers": args.workers,
        "trials": args.trials,
        "faults": faults if args.faults else "none",
        "stopped_at_timeout": any(f["fault"] == "timeout" for f in faults),  # every worker killed at --timeout
        "database_faults": (
            "applied" if args.storage == "postgresql" else f"not applicable: {args.storage} has no server"
        ),
        "states": dict(by_state),
        "complete": by_state.get("COMPLETE", 0),
        "failed": by_state.get("FAIL", 0),
        "pruned": by_state.get("PRUNED", 0),
        "pruned_why": dict(pruned_why),
        "running_left": by_state.get("RUNNING", 0),
        "distinct_archs": len(set(archs)),
        "feasible_complete": len(feasible),
        "repeated_archs": len(archs) - len(set(archs)),
        "evaluated": len(evaluated),
        "evaluated_twice": len(evaluated) - len({t.user_attrs["arch"] for t in evaluated}),
        "proposed_by": dict(proposed_by),
        "wall_s": round(wall, 1),
        "first_start_to_last_complete_s": round(span, 1),
        "trials_per_s": round(len(complete) / span, 3) if span == span and span > 0 else None,
        "trials_per_s_per_worker": round(len(complete) / span / args.workers, 3) if span == span and span > 0 else None,
        "per_worker_process": per_worker,
        "worker_processes": len(workers),
        "worker_exits": fleet.exits,
        "reads": reads,
        "reads_per_trial": round(reads / max(1, len(finished)), 2),
        "reads_per_trial_first_second_half": halves("reads"),
        "storage_s_per_trial_first_second_half": halves("storage_s"),
        "wall_s_per_trial_first_second_half": halves("wall_s"),
        "storage_share": round(storage_s / busy_s, 4) if busy_s else None,
        "storage_share_last_tenth": (
            round(sum(r["storage_s"] for r in last_tenth) / sum(r["wall_s"] for r in last_tenth), 4)
            if last_tenth
            else None
        ),
        "storage_share_of_trials": (
            round(sum(r["storage_s"] for r in steady) / sum(r["wall_s"] for r in steady), 4)
            if steady and sum(r["wall_s"] for r in steady) > 0
            else None
        ),
        "round_trips_per_trial": per_steady_trial("round_trips"),
        "round_trips_per_trial_first_second_half": halves("round_trips", steady),
        "heartbeat_round_trips_per_trial": per_steady_trial("heartbeat_round_trips"),
        "round_trips_by_call_per_trial": {
            name: round(n / max(1, len(finished)), 2) for name, n in by_call.most_common()
        },
        "quadnas_storage_calls": dict(sum((Counter(w.get("quadnas_calls", {})) for w in workers), Counter())),
        "storage_ms_by_call_per_trial": {
            name: round(1000 * s / max(1, len(finished)), 2)
            for name, s in sum((Counter(w.get("quadnas_seconds", {})) for w in workers), Counter()).most_common()
        },
        "first_trials_left_out": len(firsts),
        "storage_calls": dict(sum((Counter(w["calls"]) for w in workers), Counter())),
        "sql_statements": dict(sum((Counter(w["sql"]) for w in workers), Counter())),
        "driver_reads_failed_while_db_down": failed_to_read,
        "host": {"machine": platform.machine(), "processor": _cpu(), "cpus": os.cpu_count()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_during_max": [round(max(col), 2) for col in zip(*loads, strict=True)] if loads else None,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "measured beside other jobs on a shared host (see loadavg)",
        "command": " ".join([sys.executable, *sys.argv]),
        "worker_argv": fleet.argv,
    }
    return summary


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def tabulate(paths: list[str]) -> str:
    """A markdown table of summaries (`summary.json` files, or folders holding one)."""
    rows = [
        "| storage | workers | trials | faults | complete / failed / pruned | distinct archs | alternative "
        "| trials/s (per worker) | study reads / trial | SQL SELECTs or log reads / trial (1st, 2nd half) "
        "| storage share | loadavg max (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in paths:
        file = Path(path) / "summary.json" if Path(path).is_dir() else Path(path)
        s = json.loads(file.read_text())
        faults = "none" if s["faults"] == "none" else ", ".join(f["fault"] for f in s["faults"] if "skipped" not in f)
        calls = s["storage_calls"].get("get_all_trials", 0)
        finished = s["complete"] + s["failed"] + s["pruned"]
        rows.append(
            f"| {s['storage']} | {s['workers']} | {s['trials']} | {faults} | {s['complete']} / {s['failed']} / "
            f"{s['pruned']} | {s['distinct_archs']} | {s['proposed_by'].get('alternative', 0)} | {s['trials_per_s']} "
            f"({s['trials_per_s_per_worker']}) | {calls / max(1, finished):.2f} | {s['reads_per_trial']} "
            f"({', '.join(str(x) for x in s['reads_per_trial_first_second_half'])}) | {s['storage_share']:.1%} "
            f"| {s['loadavg_during_max'][0]} |"
        )
    return "\n".join(rows)


def tabulate_cost(specs: list[str]) -> str:
    """A markdown table of what the storage costs a trial, one row per `LABEL=PATH` (a summary or its folder)."""
    rows = [
        "| code | storage | workers | trials | sampler | round trips / trial (1st, 2nd half) | heartbeat round trips "
        "/ trial | study reads / trial | storage share of a trial | trials/s | loadavg max (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        label, _, path = spec.rpartition("=")
        file = Path(path) / "summary.json" if Path(path).is_dir() else Path(path)
        s = json.loads(file.read_text())
        argv = s["worker_argv"]
        sampler = argv[argv.index("--sampler") + 1] if "--sampler" in argv else "tpe"
        finished = s["complete"] + s["failed"] + s["pruned"]
        reads = s["storage_calls"].get("get_all_trials", 0) / max(1, finished)
        halves = ", ".join(f"{x:.1f}" for x in s["round_trips_per_trial_first_second_half"])
        done = s["complete"] if s["complete"] >= s["trials"] else f"{s['complete']} of {s['trials']} (stopped)"
        rows.append(
            f"| {label} | {s['storage']} | {s['workers']} | {done} | {sampler} | "
            f"{s['round_trips_per_trial']:.1f} ({halves}) | {s['heartbeat_round_trips_per_trial']:.1f} | {reads:.2f} "
            f"| {s['storage_share_of_trials']:.1%} | {s['trials_per_s']} | {s['loadavg_during_max'][0]} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(Path(argv[1]), argv[3:] if argv[2:3] == ["--"] else argv[2:])
    if argv[:1] == ["--tabulate"]:
        print(tabulate(argv[1:]))
        return 0
    if argv[:1] == ["--tabulate-cost"]:
        print(tabulate_cost(argv[1:]))
        return 0
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", choices=("sqlite", "journal", "postgresql"), default="postgresql")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--device", default="vpu")
    parser.add_argument("--budget", default="30ms")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--faults", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--study", help="study name (default: a fresh one)")
    parser.add_argument("--postgres-url", help="server to create the run's database on (default: .ci/postgres.sh)")
    parser.add_argument("--pg-cluster", help='"VERSION NAME" of that server for pg_ctlcluster (the faults)')
    parser.add_argument("--out", default=None, help="folder for the JSON and worker logs (default: runs/load/<time>)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before every worker is killed")
    parser.add_argument("--no-replace", action="store_true", help="do not restart a worker that exits with an error")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.trials < 1:
        parser.error("--workers and --trials must be at least 1")
    args.out = args.out or str(ROOT / "runs" / "load" / time.strftime("%Y%m%d-%H%M%S"))
    summary = drive(args, extra)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=2))
    shown = {
        k: summary[k]
        for k in (
            "storage",
            "workers",
            "trials",
            "complete",
            "failed",
            "pruned",
            "distinct_archs",
            "evaluated_twice",
            "proposed_by",
            "trials_per_s",
            "trials_per_s_per_worker",
            "reads_per_trial",
            "reads_per_trial_first_second_half",
            "storage_share",
            "storage_share_last_tenth",
            "storage_share_of_trials",
            "round_trips_per_trial",
            "round_trips_per_trial_first_second_half",
            "heartbeat_round_trips_per_trial",
            "round_trips_by_call_per_trial",
            "loadavg_during_max",
        )
    }
    print(json.dumps(shown, indent=1))
    print(f"summary: {Path(args.out, 'summary.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
