"""`quadnas dashboard`: optuna-dashboard on a search's study, served to this machine only."""

from __future__ import annotations

import argparse
from pathlib import Path

from quadnas.cli.common import console, positive_int

HOST = "127.0.0.1"  # never the network: reach it from elsewhere through an SSH tunnel
INSTALL_HINT = "pip install 'quadnas[dashboard]'"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dashboard",
        help="browse a search's trials in optuna-dashboard",
        description="Serve optuna-dashboard on a search's study at http://127.0.0.1:PORT (this machine only). "
        "Objectives are named (accuracy, latency_ms[DEVICE]) and every trial carries its arch, predicted latency, "
        "share of the budget and a feasible flag.",
    )
    p.add_argument("--study", help="study name; its storage is RUNS_DIR/STUDY/study.db (default: the only study)")
    p.add_argument("--storage", help="Optuna storage: RDB URL or journal file (default sqlite under runs/<study>/)")
    p.add_argument("--runs-dir", default="runs", help="folder of the searches' results (default runs)")
    p.add_argument("--port", type=positive_int, default=8080, help="port on 127.0.0.1 (default 8080)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from quadnas._search import open_storage
    from quadnas.errors import QuadnasError

    try:
        import optuna_dashboard
    except ImportError:
        raise QuadnasError(
            f"quadnas dashboard needs optuna-dashboard, which is not installed: {INSTALL_HINT}"
        ) from None
    spec = args.storage or default_storage(Path(args.runs_dir), args.study)
    storage = open_storage(spec)
    names = optuna.get_all_study_names(storage)
    if args.study and args.study not in names:
        raise QuadnasError(
            f"storage {spec} holds no study '{args.study}' (it holds: {', '.join(names) or 'none'}): "
            "pass --study with one of them"
        )
    console.print(f"optuna-dashboard on {spec}: http://{HOST}:{args.port}/dashboard (Ctrl-C stops it)", highlight=False)
    try:
        optuna_dashboard.run_server(storage, host=HOST, port=args.port)
    except OSError as e:
        raise QuadnasError(f"cannot serve on {HOST}:{args.port}: {e.strerror or e}: pass another --port") from None
    except KeyboardInterrupt:
        pass
    return 0


def default_storage(runs_dir: Path, study: str | None) -> str:
    """The SQLite storage of `study` under `runs_dir`, or of the only study there when none is named."""
    from quadnas.errors import QuadnasError

    if study:
        path = runs_dir / study / "study.db"
        if not path.is_file():
            raise QuadnasError(f"{path} does not exist: run `quadnas search` first, or pass --runs-dir or --storage")
        return f"sqlite:///{path.resolve()}"
    found = sorted(runs_dir.glob("*/study.db"))
    if len(found) != 1:
        listed = ", ".join(p.parent.name for p in found) or f"none under {runs_dir}/"
        raise QuadnasError(f"name the study to show (studies: {listed}): pass --study NAME, --runs-dir or --storage")
    return f"sqlite:///{found[0].resolve()}"
