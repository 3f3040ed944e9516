"""Sampler benchmark: best accuracy found under the vpu 30 ms budget, TPE vs random.

Same trial count and seeds for each sampler, one in-memory study per run (no storage
I/O in the timing), the same cached supernet. Writes JSON with per-run figures,
the mean best accuracy per sampler and trials per minute.

    python scripts/bench_search.py [--trials 100] [--seeds 0 1 2] [--samplers tpe random]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import optuna

from quadnas._search.config import SearchConfig
from quadnas._search.objective import Objective
from quadnas._search.results import candidates, rank_feasible
from quadnas._search.samplers import guided_sampler
from quadnas._search.targets import Targets
from quadnas.data import load_dataset
from quadnas.space import SearchSpace
from quadnas.supernet.evaluate import Evaluator
from quadnas.supernet.provide import provide_supernet


def run_once(sampler: str, seed: int, trials: int, parts: dict) -> dict:
    space, targets, evaluator = parts["space"], parts["targets"], parts["evaluator"]
    evaluator.cache.clear()  # every run pays for its own evaluations
    config = parts["config"].model_copy(update={"sampler": sampler, "seed": seed})
    study = optuna.create_study(direction="maximize", sampler=guided_sampler(config, space, targets))
    objective = Objective(space, targets, evaluator.accuracy, "constrained", -0.07, trials)
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - start
    ranked = rank_feasible(candidates(study, [t.label for t in targets]), targets.budgets)
    evaluated = sum(bool(t.user_attrs.get("evaluated")) for t in study.trials)
    distinct = len({t.user_attrs["arch"] for t in study.trials if "arch" in t.user_attrs})
    return {
        "sampler": sampler,
        "seed": seed,
        "trials": trials,
        "seconds": round(seconds, 2),
        "trials_per_minute": round(60 * trials / seconds, 1),
        "evaluated": evaluated,
        "distinct_archs": distinct,
        "best_accuracy": ranked[0].accuracy if ranked else None,
        "best_arch": str(ranked[0].arch) if ranked else None,
        "best_latency_ms": round(ranked[0].latency_ms, 3) if ranked else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/vpu.yaml")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--out", default="docs/figures/bench_search.json")
    args = parser.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = SearchConfig.from_sources(args.config, {})
    space = SearchSpace.load(config.space)
    dataset = load_dataset(config.data, config.resolution)
    supernet, checkpoint = provide_supernet(space, dataset, config.checkpoint, None)
    parts = {
        "config": config,
        "space": space,
        "targets": Targets.load(config.devices, space),
        "evaluator": Evaluator(supernet, dataset),
    }
    runs = [run_once(s, seed, args.trials, parts) for seed in args.seeds for s in args.samplers]
    summary = {}
    for s in args.samplers:
        mine = [r for r in runs if r["sampler"] == s]
        accs = [r["best_accuracy"] for r in mine if r["best_accuracy"] is not None]
        summary[s] = {
            "mean_best_accuracy": round(statistics.mean(accs), 4) if accs else None,
            "best_accuracies": accs,
            "mean_trials_per_minute": round(statistics.mean(r["trials_per_minute"] for r in mine), 1),
            "mean_evaluated": statistics.mean(r["evaluated"] for r in mine),
            "mean_distinct_archs": statistics.mean(r["distinct_archs"] for r in mine),
        }
    result = {
        "config": args.config,
        "device": config.device,
        "budget": str(config.budget),
        "data": config.data,
        "checkpoint": str(checkpoint),
        "trials": args.trials,
        "seeds": args.seeds,
        "summary": summary,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
