"""Which way of choosing among a search's finalists picks best? Each policy replayed on the same finalists.

Reads `search_vs_baselines.py --searched default` runs (their JSON files: every search's finalists with the
judge's one-seed accuracy and the supernet's score) and replays each policy below on every search's
finalists: what it would have picked, the pick's stand-alone mean over seeds 0-2 (the ground truth), and the
budget's verdict as `search_vs_baselines.py` reaches it, with the policy's picks as the searched role. A
policy that asks for a second judge seed trains it as `quadnas search` trains finalists (the search's cache
under RUNS/finalists is read and extended); a pick without a ground truth is trained stand-alone with seeds
0-2 into `--truth-store`, which later runs read again.

    python scripts/judge_policies.py docs/figures/search_vs_baselines_clutter_apart_*.json \
        --truth docs/figures/search_vs_baselines_clutter*.json --truth-store docs/figures/finalists_truth_clutter.json \
        --out docs/figures/judge_policies_clutter.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from judge_seeds import TRUTH_SEEDS, read_json
from scipy.stats import rankdata
from search_vs_baselines import RERANKED, never_loses, verdict

from quadnas._search.finalists import DEFAULT_EPOCHS, JUDGE_SEED, FinalistCache, FinalistRecipe, cached_accuracy
from quadnas.bench.standalone_pool import StandaloneRecipe, Store, train_missing
from quadnas.data import load_dataset
from quadnas.portable.files import atomic_write
from quadnas.progress import Progress, stderr_logging
from quadnas.space import SearchSpace

Finalist = dict[str, Any]  # a search_vs_baselines.py finalist: arch, trained, trained_seeds, supernet_accuracy, origin
SecondSeed = Callable[[str], float]  # an arch's judge accuracy with a second training seed
Policy = Callable[[list[Finalist], SecondSeed], str]


def first_seed(finalist: Finalist) -> float:
    """The judge's accuracy with its first seed: `trained_seeds[0]`, or `trained` in a file without `trained_seeds`."""
    return float(finalist.get("trained_seeds", [finalist["trained"]])[0])


def by_judge(finalists: list[Finalist], _: SecondSeed) -> str:
    """The most accurate under the judge's first seed (ties: the search's order)."""
    return max(enumerate(finalists), key=lambda f: (first_seed(f[1]), -f[0]))[1]["arch"]


def by_rank_sum(finalists: list[Finalist], _: SecondSeed) -> str:
    """The best mean of the judge's rank and the supernet's rank (ties: the judge's order)."""
    judge = rankdata([first_seed(f) for f in finalists])
    supernet = rankdata([f["supernet_accuracy"] for f in finalists])
    best = max(range(len(finalists)), key=lambda i: (judge[i] + supernet[i], first_seed(finalists[i]), -i))
    return str(finalists[best]["arch"])


def supernet_first(keep: int) -> Policy:
    """The judge's pick among the `keep` finalists the supernet scores highest."""

    def policy(finalists: list[Finalist], second: SecondSeed) -> str:
        kept = sorted(finalists, key=lambda f: -f["supernet_accuracy"])[:keep]
        return by_judge(kept, second)

    return policy


def second_seed_for(top: int) -> Policy:
    """The judge's `top` finalists trained again with a second seed: the best mean over both seeds."""

    def policy(finalists: list[Finalist], second: SecondSeed) -> str:
        ranked = sorted(enumerate(finalists), key=lambda f: (-first_seed(f[1]), f[0]))[:top]
        means = [(first_seed(f) + second(f["arch"])) / 2 for _, f in ranked]
        return str(ranked[int(np.argmax(means))][1]["arch"])

    return policy


POLICIES: dict[str, Policy] = {
    "judge": by_judge,
    "judge + supernet ranks": by_rank_sum,
    "supernet's top 4, then judge": supernet_first(4),
    "judge's top 2, second seed": second_seed_for(2),
    "judge's top 3, second seed": second_seed_for(3),
}


def merged(docs: list[dict[str, Any]]) -> Store:
    """Every stand-alone accuracy the JSON documents hold (their `standalone` stores), seeds of one arch joined."""
    store: Store = {}
    for doc in docs:
        for arch, seeds in doc.get("standalone", {}).items():
            store.setdefault(arch, {}).update(seeds)
    return store


def means(store: Store) -> dict[str, float]:
    """The ground truth: each arch's mean over seeds 0-2, of the archs trained with all three."""
    return {
        a: float(np.mean([s[k] for k in TRUTH_SEEDS])) for a, s in store.items() if all(k in s for k in TRUTH_SEEDS)
    }


def budget_verdict(section: dict[str, Any], picks: list[str], store: Store) -> dict[str, Any]:
    """`search_vs_baselines.verdict` of a budget with `picks` as the searched role (the re-ranked role left out)."""
    roles = {role: archs for role, archs in section["roles"].items() if role != RERANKED}
    found = verdict({"roles": {**roles, "searched": picks}, "best_measured": section.get("best_measured")}, store)
    return {
        "picks_mean": found["roles"]["searched"]["mean"],
        "seed_spread": found["seed_spread"],
        "lead": found["searched_lead"],
        "behind_best_measured": found.get("searched_behind_best_measured"),
        "never_loses": never_loses(found),
    }


def replay(path: Path, args: argparse.Namespace, kept: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Every policy on every budget of one run: its picks with their ground truth and the budget's verdict."""
    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("recipe", {}).get("searched") != "default":
        raise SystemExit(f"{path}: not a search_vs_baselines.py run with --searched default: pass one")
    recipe = doc["recipe"]
    space = SearchSpace.load(recipe["space"])
    data = load_dataset(recipe["data"], recipe["resolution"], seed=0, channels=space.config.in_channels)
    cache = FinalistCache(args.runs_dir / "finalists", space, data)
    judge_recipe = FinalistRecipe(epochs=DEFAULT_EPOCHS, seed=args.second_seed)
    truth_recipe = StandaloneRecipe(data=recipe["data"], resolution=recipe["resolution"])
    others = [read_json(t) for t in args.truth]
    kept.setdefault("recipe", recipe)  # so that search_vs_baselines.py --reuse reads the store
    kept.setdefault("standalone", {})

    def second(arch: str) -> float:
        return cached_accuracy(space, space.parse(arch), data, judge_recipe, cache, progress=progress)

    def keep(arch: str, seed: int, accuracy: float) -> None:
        atomic_write(args.truth_store, json.dumps(kept, indent=1, sort_keys=True) + "\n")
        print(f"  {arch} seed {seed}: {accuracy}", flush=True)

    found: dict[str, Any] = {}
    for budget, section in doc["budgets"].items():
        searches = {n: s["finalists"] for n, s in section["searches"].items() if s.get("finalists")}
        picks = {name: {n: policy(f, second) for n, f in searches.items()} for name, policy in POLICIES.items()}
        known = means(merged([doc, *others, kept]))
        lacking = sorted({a for chosen in picks.values() for a in chosen.values() if a not in known})
        seeds = [int(s) for s in TRUTH_SEEDS]
        train_missing(
            space.name, lacking, seeds, recipe["epochs"], args.workers, kept["standalone"], keep, truth_recipe
        )
        store = merged([doc, *others, kept])
        truth = means(store)
        found[budget] = {
            name: {
                "picks": {n: {"arch": a, "standalone": round(truth[a], 4)} for n, a in chosen.items()},
                **budget_verdict(section, list(chosen.values()), store),
            }
            for name, chosen in picks.items()
        }
        for name, row in found[budget].items():
            print(f"{budget}, {name}: picks' mean {row['picks_mean']}, never loses: {row['never_loses']}", flush=True)
    return found


def pooled(budgets: dict[str, Any], resamples: int = 2000) -> dict[str, Any]:
    """Each policy over every search of every budget: its picks' mean ground truth, and its mean difference to the
    judge's pick on the same searches with a 95% bootstrap interval over the searches (paired: one search's
    finalists are the same for every policy); how many budgets never lose."""
    rows = [(b, n) for b, found in budgets.items() for n in found["judge"]["picks"]]
    truth = {name: np.array([budgets[b][name]["picks"][n]["standalone"] for b, n in rows]) for name in POLICIES}
    draws = np.random.default_rng(0).integers(0, len(rows), size=(resamples, len(rows)))
    found = {}
    for name, values in truth.items():
        gain = values - truth["judge"]
        low, high = np.percentile(gain[draws].mean(axis=1), [2.5, 97.5])
        found[name] = {
            "searches": len(rows),
            "picks_mean": round(float(values.mean()), 4),
            "gain_over_judge": round(float(gain.mean()), 4),
            "gain_interval": [round(float(low), 4), round(float(high), 4)],
            "budgets_never_losing": sum(budgets[b][name]["never_loses"] for b in budgets),
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="search_vs_baselines.py JSON files (--searched default)")
    parser.add_argument("--second-seed", type=int, default=JUDGE_SEED + 1, help="the judge's second training seed")
    parser.add_argument("--truth", type=Path, nargs="+", default=[], help="JSON files with stand-alone seeds 0-2")
    parser.add_argument("--truth-store", type=Path, required=True, help="where picks lacking a ground truth train")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the searches keep finalists")
    parser.add_argument("--workers", type=int, default=2, help="stand-alone trainings at once")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    kept = read_json(args.truth_store) if args.truth_store.exists() else {"standalone": {}}
    progress = Progress()
    result: dict[str, Any] = {"policies": list(POLICIES), "second_seed": args.second_seed, "budgets": {}}
    for path in args.runs:
        result["budgets"].update(replay(path, args, kept, progress))
        result["pooled"] = pooled(result["budgets"])
        atomic_write(args.out, json.dumps(result, indent=1) + "\n")
    for name, row in result["pooled"].items():
        print(f"{name}: picks' mean {row['picks_mean']}, {row['gain_over_judge']:+.4f} {row['gain_interval']}")
    return 0


if __name__ == "__main__":
    with stderr_logging():  # the trainings' progress lines
        raise SystemExit(main())
