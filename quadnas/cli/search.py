"""`quadnas search`: the most accurate QuadraNet that fits a latency budget on a device."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from quadnas._search import DEFAULT_MODE, DEFAULT_SAMPLER, MODES, SAMPLERS, one_of
from quadnas.cli.common import console, err_console, non_negative_int, positive_float, positive_int
from quadnas.cli.json_output import add_json_flag, print_json
from quadnas.cli.progress import progress_for

if TYPE_CHECKING:
    from rich.table import Table

    from quadnas._search import Candidate, SearchResult
    from quadnas.space import Arch


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "search",
        help="search the best arch under a latency budget",
        description="Search the most accurate arch whose predicted latency on DEVICE fits BUDGET. "
        "Repeat --device and --budget (paired in order) to search one arch that fits every device's budget. "
        "Trains (and caches) a supernet first when no --checkpoint is given. Rerunning resumes the study.",
    )
    p.add_argument("--config", help="YAML file holding a whole search; flags override it")
    p.add_argument(
        "--device",
        action="append",
        help="cpu, vpu, gpu, a table name or a table path (default vpu); repeat for several devices",
    )
    p.add_argument(
        "--budget",
        action="append",
        help="latency budget with a unit: 30ms, 0.03s, 500us (default 30ms); one per --device, in order",
    )
    p.add_argument("--space", help="search space name or YAML path (default quadranet-t)")
    p.add_argument(
        "--data",
        help="mnist5k, mnist5k-clutter, digits, an image folder, a .npz or a CIFAR-10 folder (default mnist5k)",
    )
    p.add_argument("--resolution", type=int, help="training/evaluation resolution (default 32)")
    p.add_argument(
        "--checkpoint", help="supernet checkpoint; default: train one and cache it under RUNS_DIR/supernets/"
    )
    p.add_argument("--train-epochs", type=positive_int, help="epochs when the supernet must be trained")
    p.add_argument(
        "--train-width",
        type=float,
        help="the trained supernet's width, a fraction of the space's in (0, 1] (default 0.25 on the demo sets mnist5k "
        "and digits, 0.5 elsewhere: it ranks archs better where they differ, at about 2x the training time; 1 at "
        "about 8x: docs/benchmarks.md)",
    )
    p.add_argument(
        "--train-device", help="torch device that trains and evaluates the supernet: cpu (default), cuda or cuda:N"
    )
    p.add_argument("--mode", help=one_of(MODES, DEFAULT_MODE))
    p.add_argument("--sampler", help=one_of(SAMPLERS, DEFAULT_SAMPLER))
    p.add_argument(
        "--rerank",
        metavar="PROXY",
        help="re-rank the archs under the budget by their mean rank of supernet accuracy and a zero-cost "
        "proxy: meco_opt, zico, params, macs, synflow or meco (default: supernet accuracy alone, which no "
        "proxy beat on both bundled datasets: docs/benchmarks.md)",
    )
    p.add_argument(
        "--finalists",
        type=non_negative_int,
        metavar="K",
        help="train the K best archs under the budget and the hand design of each kernel/expansion family "
        "stand-alone, briefly, and pick the most accurate (default 3; 0 on the bundled mnist5k and digits, "
        "where short training cannot tell archs apart; 0: pick by supernet accuracy alone)",
    )
    p.add_argument(
        "--finalist-epochs",
        type=positive_float,
        metavar="E",
        help="epochs of each finalist's stand-alone training (default 4, as long as the supernet's)",
    )
    p.add_argument("--trials", type=positive_int, help="trials in total, over all runs and workers (default 100)")
    p.add_argument("--seed", type=int)
    p.add_argument("--study", help="study name (default derived from space, data, devices, budgets and mode)")
    p.add_argument("--storage", help="Optuna storage: RDB URL or journal file (default sqlite under runs/<study>/)")
    p.add_argument("--runs-dir", help="folder for results (default runs)")
    p.add_argument("--top", type=positive_int, default=10, help="rows of the result table (default 10)")
    add_json_flag(p, "search")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from quadnas._search import SearchConfig, search
    from quadnas.errors import QuadnasError

    if args.mode and args.mode not in MODES:
        raise QuadnasError(f"unknown mode '{args.mode}': use one of {', '.join(MODES)}")
    if args.sampler and args.sampler not in SAMPLERS:
        raise QuadnasError(f"unknown sampler '{args.sampler}': use one of {', '.join(SAMPLERS)}")
    overrides = {k: getattr(args, k) for k in SearchConfig.override_keys() if hasattr(args, k)}
    config = SearchConfig.from_sources(args.config, overrides)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar says what Optuna's log would
    result = search(config, progress=progress_for(err_console))

    complete = len(result.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if args.json:
        print_json("search", search_fields(result, complete, args.top))
        return 0 if result.best else 1
    budgets = ", ".join(f"{d.budget.ms:g} ms on {d.device}" for d in config.devices)
    console.print(
        f"study [bold]{result.study.study_name}[/]: {complete} complete trials, "
        f"budget {budgets}, results in {result.run_dir}/",
        soft_wrap=True,
    )
    within = "every budget" if config.several else "the budget"
    if result.best is None:
        console.print(f"[bold red]no arch under {within} was found[/]; the closest proposals were:")
        shown = result.closest
    else:
        shown = result.ranked[: args.top]
    console.print(result_table(result, shown, f"best architectures under {within}" if result.best else None))
    if result.finalists:
        console.print(finalist_table(result))
    if result.best is not None:
        console.print(f"best arch: {result.best.arch}", highlight=False, soft_wrap=True)
    if config.mode == "pareto" and result.pareto:
        console.print(pareto_line(result), soft_wrap=True)
    return 0 if result.best else 1


def result_table(result: SearchResult, shown: list[Candidate], title: str | None) -> Table:
    """The archs `shown`: accuracy, then latency and share of the budget on each device."""
    from rich.table import Table

    table = Table(title=title or "closest architectures")
    latency_columns = [f"{label} ms (of budget)" for label in result.budgets]
    proxy_column = [result.config.rerank] if result.config.rerank and result.best else []
    for column in ("#", "arch", "accuracy", *proxy_column, *latency_columns, "trial"):
        table.add_column(column, justify="left" if column == "arch" else "right", no_wrap=True)
    longest = max((len(str(block)) for c in shown for block in c.arch.blocks), default=4)
    others = 32 + 18 * len(result.budgets)  # the other columns' width
    per_line = max(2, (console.width - others) // (longest + 1))
    for i, c in enumerate(shown, 1):
        acc = "not evaluated" if c.accuracy is None else f"{c.accuracy:.4f}"
        shares = c.shares(result.budgets)
        latencies = [f"{c.latencies[label]:.2f} ({shares[label]:.0%})" for label in result.budgets]
        proxy = [] if not proxy_column else ["—" if c.proxy is None else f"{c.proxy:.3g}"]
        trial = "—" if c.trial is None else str(c.trial)
        table.add_row(str(i), wrap_arch(c.arch, per_line), acc, *proxy, *latencies, trial)
    return table


def finalist_table(result: SearchResult) -> Table:
    """The finalists, the most accurate after short stand-alone training first (the first is the best arch)."""
    from rich.table import Table

    table = Table(title=f"finalists, trained stand-alone for {result.finalist_epochs:g} epochs each")
    for column in ("#", "arch", "trained", "seeds", "supernet", "from", "trial"):
        table.add_column(column, justify="left" if column in ("arch", "from") else "right", no_wrap=True)
    longest = max(len(str(block)) for c in result.finalists for block in c.arch.blocks)
    per_line = max(2, (console.width - 61) // (longest + 1))  # 61: every other column and the borders
    for i, c in enumerate(result.finalists, 1):
        trained = "—" if c.trained is None else f"{c.trained:.4f}"
        supernet = "—" if c.accuracy is None else f"{c.accuracy:.4f}"
        trial = "—" if c.trial is None else str(c.trial)
        seeds = str(len(c.trained_seeds)) if c.trained_seeds else "—"
        table.add_row(str(i), wrap_arch(c.arch, per_line), trained, seeds, supernet, c.origin, trial)
    return table


def pareto_line(result: SearchResult) -> str:
    """One line on the Pareto front: its ends for one device; its size and the objectives for several."""
    front = result.pareto
    if result.config.several:
        return (
            f"Pareto front over accuracy and the latency on {', '.join(result.budgets)}: {len(front)} archs, "
            f"accuracy {front[0].accuracy:.4f} to {max(c.evaluated_accuracy() for c in front):.4f}; see pareto.csv"
        )
    return (
        f"Pareto front: {len(front)} archs, from {front[0].latency_ms:.2f} ms "
        f"(acc {front[0].accuracy:.4f}) to {front[-1].latency_ms:.2f} ms "
        f"(acc {front[-1].accuracy:.4f}); see pareto.csv"
    )


def search_fields(result: SearchResult, complete: int, top: int) -> dict[str, Any]:
    """The `quadnas.search/1` document's keys (`top`: how many ranked archs)."""
    config = result.config

    def listed(candidates: list[Candidate]) -> list[dict[str, Any]]:
        return [candidate_fields(c, result) for c in candidates]

    return {
        "study": result.study.study_name,
        "space": config.space,
        "device": None if config.several else config.device,
        "budget_ms": None if config.several else config.budget.ms,
        "devices": [{"device": d.device, "name": d.label, "budget_ms": d.budget.ms} for d in config.devices],
        "mode": config.mode,
        "sampler": config.sampler,
        "rerank": config.rerank,
        "complete_trials": complete,
        "run_dir": result.run_dir,
        "best": None if result.best is None else candidate_fields(result.best, result),
        "ranked": listed(result.ranked[:top]),
        "closest": listed(result.closest),
        "pareto": listed(result.pareto),
        "finalists": listed(result.finalists),
        "finalist_epochs": result.finalist_epochs,
        "supernet_width": result.supernet_width,
        "notes": result.notes,
        "files": result.files,
    }


def candidate_fields(c: Candidate, result: SearchResult) -> dict[str, Any]:
    """One arch of a search: its text, accuracy (None: not evaluated), latency and share of the budget on
    each device (the single-device keys are None when there are several), and trial."""
    several, shares = result.config.several, c.shares(result.budgets)
    return {
        "arch": str(c.arch),
        "accuracy": c.accuracy,
        "latency_ms": None if several else c.latency_ms,
        "budget_share": None if several else shares[next(iter(shares))],
        "devices": [
            {"device": d.device, "latency_ms": c.latencies[d.label], "budget_share": shares[d.label]}
            for d in result.config.devices
        ],
        "proxy": c.proxy,
        "trained": c.trained,
        "trained_seeds": list(c.trained_seeds),
        "origin": c.origin,
        "trial": c.trial,
    }


def wrap_arch(arch: Arch, per_line: int) -> str:
    """`arch` on lines of `per_line` blocks, broken only after a dash (a block is never cut)."""
    tokens = [str(block) for block in arch.blocks]
    return "-\n".join("-".join(tokens[i : i + per_line]) for i in range(0, len(tokens), per_line))
