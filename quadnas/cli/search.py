"""`quadnas search`: the most accurate QuadraNet that fits a latency budget on a device."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from quadnas.cli.common import console, err_console, positive_int
from quadnas.cli.json_output import add_json_flag, print_json
from quadnas.cli.progress import progress_for
from quadnas.study import DEFAULT_MODE, DEFAULT_SAMPLER, MODES, SAMPLERS, one_of

if TYPE_CHECKING:
    from quadnas.latency import Budget
    from quadnas.study import Candidate, SearchResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "search",
        help="search the best arch under a latency budget",
        description="Search the most accurate arch whose predicted latency on DEVICE fits BUDGET. "
        "Trains (and caches) a supernet first when no --checkpoint is given. Rerunning resumes the study.",
    )
    p.add_argument("--config", help="YAML file holding a whole search; flags override it")
    p.add_argument("--device", help="cpu, vpu, gpu, a table name or a table path (default vpu)")
    p.add_argument("--budget", help="latency budget with a unit: 30ms, 0.03s, 500us (default 30ms)")
    p.add_argument("--space", help="search space name or YAML path (default quadranet-t)")
    p.add_argument("--data", help="mnist5k, digits, an image folder, a .npz or a CIFAR-10 folder (default mnist5k)")
    p.add_argument("--resolution", type=int, help="training/evaluation resolution (default 32)")
    p.add_argument(
        "--checkpoint", help="supernet checkpoint; default: train one and cache it under RUNS_DIR/supernets/"
    )
    p.add_argument("--train-epochs", type=positive_int, help="epochs when the supernet must be trained")
    p.add_argument(
        "--train-device", help="torch device that trains and evaluates the supernet: cpu (default), cuda or cuda:N"
    )
    p.add_argument("--mode", help=one_of(MODES, DEFAULT_MODE))
    p.add_argument("--sampler", help=one_of(SAMPLERS, DEFAULT_SAMPLER))
    p.add_argument("--trials", type=positive_int, help="trials in total, over all runs and workers (default 100)")
    p.add_argument("--seed", type=int)
    p.add_argument("--study", help="study name (default derived from space, device, budget and mode)")
    p.add_argument("--storage", help="Optuna storage: RDB URL or journal file (default sqlite under runs/<study>/)")
    p.add_argument("--runs-dir", help="folder for results (default runs)")
    p.add_argument("--top", type=positive_int, default=10, help="rows of the result table (default 10)")
    add_json_flag(p, "search")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna
    from rich.table import Table

    from quadnas.errors import QuadnasError
    from quadnas.study import SearchConfig, search

    if args.mode and args.mode not in MODES:
        raise QuadnasError(f"unknown mode '{args.mode}': use one of {', '.join(MODES)}")
    if args.sampler and args.sampler not in SAMPLERS:
        raise QuadnasError(f"unknown sampler '{args.sampler}': use one of {', '.join(SAMPLERS)}")
    overrides = {k: getattr(args, k) for k in SearchConfig.model_fields if hasattr(args, k)}
    config = SearchConfig.from_sources(args.config, overrides)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says what Optuna's log would
    result = search(config, progress=progress_for(err_console))

    complete = len(result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if args.json:
        print_json("search", search_fields(result, complete, args.top))
        return 0 if result.best else 1
    console.print(
        f"study [bold]{result.study.study_name}[/]: {complete} complete trials, "
        f"budget {result.budget.ms:g} ms on {config.device}, results in {result.run_dir}/",
        soft_wrap=True,
    )
    if result.best is None:
        console.print("[bold red]no arch under the budget was found[/]; the fastest proposals were:")
        shown = result.closest
    else:
        shown = result.ranked[: args.top]
    table = Table(title="best architectures under the budget" if result.best else "closest architectures")
    for column in ("#", "arch", "accuracy", "latency", "of budget", "trial"):
        table.add_column(column, justify="left" if column == "arch" else "right", no_wrap=True)
    per_line = max(2, (console.width - 50) // 5)  # tokens of up to 4 characters and a dash
    for i, c in enumerate(shown, 1):
        acc = "not evaluated" if c.accuracy is None else f"{c.accuracy:.4f}"
        table.add_row(
            str(i),
            wrap_arch(c.arch, per_line),
            acc,
            f"{c.latency_ms:.2f} ms",
            f"{result.budget.share(c.latency_ms):.0%}",
            str(c.trial),
        )
    console.print(table)
    if result.best is not None:
        console.print(f"best arch: {result.best.arch}", highlight=False, soft_wrap=True)
    if config.mode == "pareto" and result.pareto:
        console.print(
            f"Pareto front: {len(result.pareto)} archs, from {result.pareto[0].latency_ms:.2f} ms "
            f"(acc {result.pareto[0].accuracy:.4f}) to {result.pareto[-1].latency_ms:.2f} ms "
            f"(acc {result.pareto[-1].accuracy:.4f}); see pareto.csv"
        )
    return 0 if result.best else 1


def search_fields(result: SearchResult, complete: int, top: int) -> dict[str, Any]:
    """The `quadnas.search/1` document's keys (`top`: how many ranked archs)."""
    config = result.config

    def listed(candidates: list[Candidate]) -> list[dict[str, Any]]:
        return [candidate_fields(c, result.budget) for c in candidates]

    return {
        "study": result.study.study_name,
        "space": config.space,
        "device": config.device,
        "budget_ms": result.budget.ms,
        "mode": config.mode,
        "sampler": config.sampler,
        "complete_trials": complete,
        "run_dir": result.run_dir,
        "best": None if result.best is None else candidate_fields(result.best, result.budget),
        "ranked": listed(result.ranked[:top]),
        "closest": listed(result.closest),
        "pareto": listed(result.pareto),
        "supernet_width": result.supernet_width,
        "notes": result.notes,
        "files": result.files,
    }


def candidate_fields(c: Candidate, budget: Budget) -> dict[str, Any]:
    """One arch of a search: its text, accuracy (None: not evaluated), latency and trial."""
    return {
        "arch": c.arch,
        "accuracy": c.accuracy,
        "latency_ms": c.latency_ms,
        "budget_share": budget.share(c.latency_ms),
        "trial": c.trial,
    }


def wrap_arch(arch: str, per_line: int) -> str:
    """`arch` on lines of `per_line` tokens, broken only after a dash (a token is never cut)."""
    tokens = arch.split("-")
    return "-\n".join("-".join(tokens[i : i + per_line]) for i in range(0, len(tokens), per_line))
