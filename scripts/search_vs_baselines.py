"""Searched vs random vs hand-designed archs at one latency budget, trained stand-alone.

For each `--budget DEVICE:MS` (default vpu:30 and cpu:300):

* **searched**: the best arch of `quadnas search` (tpe, `--trials`) with each of `--search-seeds`;
* **searched, re-ranked**: the same studies' best by `quadnas search --rerank` (`--rerank`, default
  meco_opt; no new trial): the mean rank of supernet accuracy and the proxy;
* **random, best**: the best of the same number of random feasible archs scored by the same
  supernet (`quadnas search --sampler random`, the first search seed);
* **random, median**: the feasible arch of that random search whose supernet accuracy is the
  median (the lower one for an even count): a typical arch drawn at random under the budget;
* **hand-designed**: the same kernel and expansion in every active block, each stage keeping the
  same share j/J of its blocks (J its deepest stage's depth, at least one block per stage, the
  first ones active, the rest identity): of all such archs at or under the budget, the one with
  the highest predicted latency.

Every arch is trained stand-alone from random init with each of `--seeds` (the supernet's recipe,
`quadnas.bench.standalone_pool`). The JSON holds every search, arch, seed accuracy and the verdict; it is
also the cache (searches resume as studies, finished trainings are kept). The goal: the searched
archs' mean ahead of the hand-designed and of the median random arch by more than the seeds' spread
(judged for the re-ranked archs too).

`--known` adds the archs that `rank_correlation.py` trained stand-alone with the same data, recipe and
seeds: with them, each budget reports the **best measured** arch under it (of every arch trained with
all `--seeds`) and its lead over the hand design, the room above the hand design that any search
could find in what has been measured. Being a maximum of noisy means, it is an optimistic estimate.

    python scripts/search_vs_baselines.py                         # both budgets, 3 search seeds, 3 seeds
    python scripts/search_vs_baselines.py --budget vpu:30 --workers 2
    python scripts/search_vs_baselines.py --data mnist5k-clutter --out docs/figures/search_vs_baselines_clutter.json \
        --plot docs/figures/search_vs_baselines_clutter.png   # on the harder variant
    quadnas train --data mnist5k-clutter --epochs 4 --no-memory-efficient --out runs/ckpt/clutter-full-e4.pt
    python scripts/search_vs_baselines.py --data mnist5k-clutter --budget vpu:30 \
        --checkpoint runs/ckpt/clutter-full-e4.pt --out docs/figures/search_vs_baselines_clutter_full.json \
        --plot docs/figures/search_vs_baselines_clutter_full.png     # searches on a full-width supernet
    python scripts/search_vs_baselines.py --data mnist5k-clutter --train-width 0.5 --rerank none \
        --reuse docs/figures/search_vs_baselines_clutter.json \
        --out docs/figures/search_vs_baselines_clutter_w05.json \
        --plot docs/figures/search_vs_baselines_clutter_w05.png      # searches train a half-width supernet
    python scripts/search_vs_baselines.py --data mnist5k-clutter --rerank none \
        --known docs/figures/rank_correlation_clutter.json docs/figures/rank_correlation_clutter_cpu400.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from quadnas.bench.standalone_pool import StandaloneRecipe, Store, summary, train_missing
from quadnas.cli.json_output import run_json
from quadnas.data import load_dataset
from quadnas.latency.devices import load_device_table
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import IDENTITY, Arch, BlockChoice, SearchSpace
from quadnas.supernet.recipe import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
RERANKED = "searched, re-ranked"
BASELINES = ("random, best", "random, median", "hand-designed")
ROLES = ("searched", RERANKED, *BASELINES)
RECIPE = asdict(StandaloneRecipe())  # the stand-alone recipe, as the JSON records it


def search(
    args: argparse.Namespace, device: str, budget: float, sampler: str, seed: int, rerank: bool = False
) -> dict[str, Any]:
    """Run (or resume, or re-rank) one `quadnas search` in its own study; its best arch, supernet accuracy, run
    folder and finalists.

    `sampler` "default" runs the default command: no flag but the data, device, budget, seed and study (and
    the supernet and finalist flags given), so finalists are trained as a user's search trains them. The other
    samplers run 100 trials without finalists: their best is the supernet's pick.
    """
    study = f"svb-{args.space}-{args.data}-{supernet_name(args)}-{device}-{budget:g}ms-{sampler}-s{seed}"
    chosen = () if sampler == "default" else ("--sampler", sampler, "--trials", str(args.trials), "--finalists", "0")
    if sampler == "default" and args.finalists is not None:
        chosen = ("--finalists", str(args.finalists))
    doc = run_json(
        "search", "--space", args.space, "--data", args.data, "--device", device, "--budget", f"{budget:g}ms",
        *chosen, "--seed", str(seed), "--study", study,
        *(("--rerank", args.rerank) if rerank else ()),
        *(("--checkpoint", str(args.checkpoint)) if args.checkpoint else ()),
        *(("--train-width", f"{args.train_width:g}") if args.train_width else ()),
        *(("--train-epochs", str(args.train_epochs)) if args.train_epochs else ()), cwd=ROOT,
    )  # fmt: skip
    best = doc["best"]
    found = {
        "study": study,
        "arch": best["arch"],
        "supernet_accuracy": best["accuracy"],
        "run_dir": doc["run_dir"],
    }
    if doc.get("finalists"):
        found["finalist_epochs"] = doc["finalist_epochs"]
        found["finalists"] = [
            {
                "arch": f["arch"],
                "trained": f["trained"],
                "trained_seeds": f["trained_seeds"],
                "supernet_accuracy": f["accuracy"],
                "origin": f["origin"],
            }
            for f in doc["finalists"]
        ]
    return found


def supernet_name(args: argparse.Namespace) -> str:
    """The supernet a search scores on, for its study's name: the checkpoint's, else the search recipe's width
    and epochs (a study refuses another supernet's scores, so a changed recipe starts new studies)."""
    if args.checkpoint:
        return args.checkpoint.stem
    chosen = {"width": args.train_width, "epochs": args.train_epochs}
    config = TrainConfig.for_search(args.data, **{k: v for k, v in chosen.items() if v})
    return f"w{config.width:g}e{config.epochs}"


def median_feasible(trials: pd.DataFrame) -> tuple[str, float]:
    """The feasible trial whose supernet accuracy is the (lower) median: its arch and accuracy."""
    feasible = trials[trials["user_attrs_feasible"].astype(bool) & (trials["state"] == "COMPLETE")]
    if feasible.empty:
        raise SystemExit("the random search found no feasible arch: raise the budget")
    ranked = feasible.sort_values(["user_attrs_accuracy", "number"], kind="stable")
    row = ranked.iloc[(len(ranked) - 1) // 2]
    return str(row["user_attrs_arch"]), float(row["user_attrs_accuracy"])


def hand_designed(predictor: LatencyPredictor, budget: float) -> Arch | None:
    """The uniform arch (one kernel and expansion, every stage the same share of its depth) with the
    highest predicted latency at or under `budget`; None if none fits."""
    space = predictor.space
    plain = [c for c in space.choices if not c.is_identity and not c.enhanced]
    candidates = []
    deepest = max(space.depths)
    for j in range(1, deepest + 1):
        depths = [max(1, round(j * d / deepest)) for d in space.depths]
        for choice in plain:
            blocks: list[BlockChoice] = []
            for depth, active in zip(space.depths, depths):
                blocks += [choice] * active + [IDENTITY] * (depth - active)
            candidates.append(Arch(tuple(blocks)))
    predicted = [(predictor.predict(a), str(a), a) for a in dict.fromkeys(candidates)]
    fits = [p for p in predicted if p[0] <= budget]
    return max(fits, key=lambda f: (f[0], f[1]))[2] if fits else None


def archs_of(space: SearchSpace, device: str, budget: float, args: argparse.Namespace, section: dict[str, Any]) -> None:
    """Fill `section["roles"]` (role -> arch texts) from the searches and the hand design, running what is missing."""
    searches = section.setdefault("searches", {})
    searched = args.searched
    borrowed = random_of(args.random_from, device, budget, args.search_seeds[0]) if args.random_from else None
    if borrowed:
        searches[f"random s{args.search_seeds[0]}"] = borrowed
    for sampler, seeds in ((searched, args.search_seeds), ("random", args.search_seeds[:1])):
        for seed in seeds:
            key = f"{sampler} s{seed}"
            if key not in searches:
                searches[key] = search(args, device, budget, sampler, seed)
                print(f"{device} {budget:g} ms, {key}: {searches[key]['arch']} ({searches[key]['supernet_accuracy']})")
                args.save()
    if args.rerank:  # the same studies, no new trial: the best by mean rank of supernet accuracy and the proxy
        for seed in args.search_seeds:
            key = f"tpe s{seed} rerank {args.rerank}"
            if key not in searches:
                searches[key] = search(args, device, budget, "tpe", seed, rerank=True)
                print(f"{device} {budget:g} ms, {key}: {searches[key]['arch']}")
                args.save()
    random_run = searches[f"random s{args.search_seeds[0]}"]
    if "median" in random_run:  # borrowed from another run of this script
        median_arch, median_acc = random_run["median"]["arch"], random_run["median"]["supernet_accuracy"]
    else:
        median_arch, median_acc = median_feasible(pd.read_csv(ROOT / random_run["run_dir"] / "trials.csv"))
    predictor = LatencyPredictor(load_device_table(device), space)
    hand = hand_designed(predictor, budget)
    if hand is None:
        print(f"{device} {budget:g} ms: no uniform arch fits, so there is no hand-designed role", flush=True)
    section["random_median_supernet_accuracy"] = median_acc
    reranked = [searches[f"tpe s{s} rerank {args.rerank}"]["arch"] for s in args.search_seeds] if args.rerank else []
    section["roles"] = {
        "searched": [searches[f"{searched} s{s}"]["arch"] for s in args.search_seeds],
        **({RERANKED: reranked} if reranked else {}),
        "random, best": [random_run["arch"]],
        "random, median": [median_arch],
        **({"hand-designed": [str(hand)]} if hand else {}),  # none where no uniform arch fits the budget
    }
    every = {a for archs in section["roles"].values() for a in archs}
    section["latency_ms"] = {a: round(predictor.predict(space.parse(a)), 2) for a in sorted(every)}


def random_of(path: Path, device: str, budget: float, seed: int) -> dict[str, Any] | None:
    """The random search of `seed` at this budget in another JSON of this script, with its median arch (None
    where it has none): the random roles without running that search again, when it scored with the same
    supernet."""
    section = json.loads(path.read_text()).get("budgets", {}).get(f"{device} {budget:g} ms")
    if not section or f"random s{seed}" not in section.get("searches", {}):
        return None
    median = section["roles"]["random, median"][0]
    found: dict[str, Any] = dict(section["searches"][f"random s{seed}"])
    found["median"] = {"arch": median, "supernet_accuracy": section["random_median_supernet_accuracy"]}
    found["borrowed_from"] = path.name
    return found


def best_measured(
    predictor: LatencyPredictor, budget: float, stores: list[Store], seeds: list[int]
) -> dict[str, Any] | None:
    """The arch with the highest mean accuracy over `seeds` among those in `stores` trained with every seed and
    predicted at or under `budget`: its text, accuracies and predicted latency (None if there is none)."""
    wanted = [str(s) for s in seeds]
    found = []
    for store in stores:
        for text, accuracies in store.items():
            if all(s in accuracies for s in wanted):
                latency = predictor.predict(predictor.space.parse(text))
                if latency <= budget:
                    found.append((float(np.mean([accuracies[s] for s in wanted])), text, latency, accuracies))
    if not found:
        return None
    mean, text, latency, accuracies = max(found)
    return {"arch": text, "mean": round(mean, 4), "latency_ms": round(latency, 2), "accuracies": accuracies}


def verdict(section: dict[str, Any], store: Store) -> dict[str, Any]:
    """Each role's stand-alone summary; whether the searched (and re-ranked) archs lead the baselines by more
    than the seeds' spread; the best measured arch's lead over the hand design, if one is known."""
    roles = {role: summary(store, archs) for role, archs in section["roles"].items()}
    spread = float(np.mean([r["sd_between_seeds"] for r in roles.values() if r["sd_between_seeds"] is not None]))

    def lead(searched: str) -> dict[str, float]:
        return {role: round(roles[searched]["mean"] - roles[role]["mean"], 4) for role in BASELINES if role in roles}

    def met(leads: dict[str, float]) -> bool:
        return all(leads[r] > spread for r in ("random, median", "hand-designed") if r in leads)

    found = {"roles": roles, "seed_spread": round(spread, 4), "searched_lead": lead("searched")}
    found["goal_met"] = met(found["searched_lead"])
    if RERANKED in roles:
        found["reranked_lead"] = lead(RERANKED)
        found["goal_met_reranked"] = met(found["reranked_lead"])
    if best := section.get("best_measured"):
        if "hand-designed" in roles:
            found["best_measured_lead_over_hand"] = round(best["mean"] - roles["hand-designed"]["mean"], 4)
        found["searched_behind_best_measured"] = round(best["mean"] - roles["searched"]["mean"], 4)
    found["never_loses"] = never_loses(found)
    return found


def finalists_vs_standalone(section: dict[str, Any], stores: list[Store], seeds: list[int]) -> dict[str, Any]:
    """How the finalists' short training ranked them against their stand-alone mean over `seeds` (the ground
    truth), over the finalists of every search whose ground truth is known: each one's pair and Kendall tau."""
    wanted = [str(s) for s in seeds]
    short: dict[str, float] = {}
    for found in section["searches"].values():
        short.update({f["arch"]: f["trained"] for f in found.get("finalists", [])})
    pairs = []
    for arch, trained in sorted(short.items()):
        known_here = next((st[arch] for st in stores if all(s in st.get(arch, {}) for s in wanted)), None)
        if known_here is not None:
            pairs.append(
                {
                    "arch": arch,
                    "short": trained,
                    "standalone": round(float(np.mean([known_here[s] for s in wanted])), 4),
                }
            )
    tau = None
    if len(pairs) >= 3:
        from scipy.stats import kendalltau

        tau = round(float(kendalltau([p["short"] for p in pairs], [p["standalone"] for p in pairs]).statistic), 3)
    return {"finalists": len(short), "with_ground_truth": pairs, "kendall_tau": tau}


def never_loses(found: dict[str, Any]) -> bool:
    """The default search's goal: at or above the hand design, ahead of the median random arch by more than the
    seeds' spread, and, where the best measured arch leads the hand design by more than the spread, within
    the spread of it. Where no hand design fits the budget, its part does not apply."""
    leads, spread = found["searched_lead"], found["seed_spread"]
    met = leads.get("hand-designed", 0.0) >= 0 and leads["random, median"] > spread
    if found.get("best_measured_lead_over_hand", 0.0) > spread:
        met = met and found["searched_behind_best_measured"] <= spread
    return bool(met)


def plot(result: dict[str, Any], path: Path) -> None:
    """One panel per budget: each role's stand-alone accuracy (every arch and seed), its mean, its predicted latency."""
    budgets = list(result["budgets"])
    fig, axes = plt.subplots(1, len(budgets), figsize=(6.5 * len(budgets), 4.6), squeeze=False)
    for ax, key in zip(axes[0], budgets):
        section, store = result["budgets"][key], result["standalone"]
        roles = [role for role in ROLES if role in section["roles"]]
        for i, role in enumerate(roles):
            values = [v for a in section["roles"][role] for v in store[a].values()]
            ax.scatter([i] * len(values), values, s=14, alpha=0.6, color=f"C{i}")
            ax.hlines(np.mean(values), i - 0.3, i + 0.3, color=f"C{i}", linewidth=2)
            latency = np.mean([section["latency_ms"][a] for a in section["roles"][role]])
            ax.annotate(f"{latency:.1f} ms", (i, min(values)), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8)  # fmt: skip
        if best := section.get("best_measured"):
            ax.axhline(best["mean"], color="grey", linestyle="--", linewidth=1)
            label = f"best measured, {best['latency_ms']:.1f} ms"
            ax.annotate(label, (0.99, best["mean"]), xycoords=ax.get_yaxis_transform(), textcoords="offset points",
                        xytext=(0, 3), ha="right", fontsize=8, color="grey")  # fmt: skip
        ax.set_xticks(range(len(roles)), roles, rotation=20, ha="right")
        v = section["verdict"]
        title = f"{key}: goal {'met' if v['goal_met'] else 'not met'}"
        if result["recipe"].get("searched") == "default":
            title = f"{key}: never below the hand design {'met' if v['never_loses'] else 'not met'}"
        if "goal_met_reranked" in v:
            title += f"; re-ranked ({section['rerank']}): {'met' if v['goal_met_reranked'] else 'not met'}"
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("stand-alone validation accuracy")
        ax.margins(y=0.15)
    fig.suptitle(f"searched vs baselines, trained stand-alone\n({result['recipe']['data']}, every seed a dot)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reuse(store: Store, path: Path, recipe: dict[str, Any]) -> None:
    """Add to `store` the (arch, seed) accuracies of another JSON of this script trained the same way."""
    try:
        other = json.loads(path.read_text())
        other_recipe = other["recipe"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = type(e).__name__
        raise SystemExit(f"--reuse {path}: not a JSON file of this script ({reason}): pass its --out") from None
    same = ("space", "epochs", *RECIPE)
    if any(other_recipe.get(key) != recipe[key] for key in same):
        raise SystemExit(f"--reuse {path}: its stand-alone recipe differs ({', '.join(same)} must match)")
    for arch, seeds in other.get("standalone", {}).items():
        store.setdefault(arch, {}).update({s: a for s, a in seeds.items() if s not in store.get(arch, {})})


def known(path: Path, space: SearchSpace, recipe: dict[str, Any]) -> Store:
    """The (arch, seed) accuracies a `rank_correlation.py` JSON trained stand-alone the way this script does."""
    try:
        other = json.loads(path.read_text())
        theirs, archs = other["recipe"], other["archs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        reason = type(e).__name__
        raise SystemExit(f"--known {path}: not a JSON file of rank_correlation.py ({reason}): pass its --out") from None
    data = load_dataset(recipe["data"], recipe["resolution"], seed=0, channels=space.config.in_channels)
    layer_scale = TrainConfig.model_fields["layer_scale_init"].default  # what quadnas.bench.standalone_pool trains with
    ours = {
        "space": recipe["space"], "data_fingerprint": data.fingerprint, "train_images": len(data.train),
        "resolution": recipe["resolution"], "seed": 0, "batch_size": recipe["batch_size"], "lr": recipe["lr"],
        "weight_decay": recipe["weight_decay"], "warmup_fraction": recipe["warmup"], "layer_scale_init": layer_scale,
        "standalone_epochs": recipe["epochs"],
    }  # fmt: skip
    differ = [key for key, value in ours.items() if theirs.get(key) != value]
    if differ:
        raise SystemExit(f"--known {path}: its stand-alone recipe differs in {', '.join(differ)}: pass another JSON")
    return {
        a["arch"]: {str(theirs["seed"]): a["standalone_accuracy"], **a.get("standalone_repeats", {})}
        for a in archs
        if a.get("standalone_accuracy") is not None
    }


def parse_budget(text: str) -> tuple[str, float]:
    device, _, ms = text.partition(":")
    try:
        return device, float(ms)
    except ValueError:
        raise SystemExit(f"--budget {text!r}: write DEVICE:MS, e.g. vpu:30") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", action="append", type=parse_budget, help="DEVICE:MS (default vpu:30, cpu:300)")
    parser.add_argument("--space", default="quadranet-t")
    parser.add_argument("--data", default=RECIPE["data"], help="searches and trainings data (default mnist5k)")
    parser.add_argument("--trials", type=int, default=100, help="trials per search")
    parser.add_argument(
        "--finalists", type=int, help="the searched role's `quadnas search --finalists` (default: the search's own)"
    )
    parser.add_argument(
        "--searched", choices=("tpe", "default"), default="tpe", help="the searched role: tpe, 100 trials, the "
        "supernet's best (default); or default: `quadnas search` with no other flag, finalists and all"
    )  # fmt: skip
    parser.add_argument(
        "--random-from", type=Path, help="a JSON of this script whose random searches (same data and supernet) "
        "give the random roles, instead of running them again"
    )  # fmt: skip
    parser.add_argument("--rerank", default="meco_opt", help="proxy of the re-ranked role (none: no such role)")
    parser.add_argument("--checkpoint", type=Path, help="supernet the searches score with (default: the search's own)")
    parser.add_argument("--train-width", type=float, help="width of the supernet the searches train (default theirs)")
    parser.add_argument("--train-epochs", type=int, help="epochs of the supernet the searches train (default theirs)")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="stand-alone training seeds")
    parser.add_argument("--epochs", type=float, default=4.0, help="stand-alone epochs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--reuse", type=Path, nargs="+", default=[], help="JSON files of this script whose stand-alone accuracies "
        "(same space, data and epochs) are taken instead of trained again"
    )  # fmt: skip
    parser.add_argument(
        "--known", type=Path, nargs="+", default=[], help="rank_correlation.py JSON files (same data and recipe) "
        "whose stand-alone archs count towards each budget's best measured arch"
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=FIGURES / "search_vs_baselines.json")
    parser.add_argument("--plot", type=Path, default=FIGURES / "search_vs_baselines.png")
    args = parser.parse_args(argv)
    args.rerank = None if args.rerank == "none" else args.rerank
    budgets = args.budget or [("vpu", 30.0), ("cpu", 300.0)]
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    recipe = {**RECIPE, "data": args.data, "epochs": args.epochs, "trials": args.trials, "space": args.space}
    if args.searched != "tpe":
        recipe["searched"] = args.searched
    if args.checkpoint:
        recipe["checkpoint"] = args.checkpoint.name
    if args.train_width:
        recipe["train_width"] = args.train_width
    if result.get("recipe", recipe) != recipe:
        raise SystemExit(f"{args.out} holds another recipe: delete it or pass another --out")
    result["recipe"] = recipe

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")

    def trained(arch: str, seed: int, accuracy: float) -> None:
        save()
        print(f"  {arch} seed {seed}: {accuracy:.4f}", flush=True)

    args.save = save
    space = SearchSpace.load(args.space)
    store = result.setdefault("standalone", {})
    for path in args.reuse:
        reuse(store, path, recipe)
    known_stores = [known(path, space, recipe) for path in args.known]
    if args.known:
        result["known_from"] = sorted({*result.get("known_from", []), *(p.name for p in args.known)})
    if args.reuse:
        result["reused_from"] = sorted({*result.get("reused_from", []), *(p.name for p in args.reuse)})
    for device, budget in budgets:
        key = f"{device} {budget:g} ms"
        section = result.setdefault("budgets", {}).setdefault(key, {})
        archs_of(space, device, budget, args, section)
        save()
        section["rerank"] = args.rerank
        archs = [a for archs in section["roles"].values() for a in archs]
        standalone = replace(StandaloneRecipe(), data=args.data)
        train_missing(space.name, archs, args.seeds, args.epochs, args.workers, store, trained, standalone)
        if known_stores:
            predictor = LatencyPredictor(load_device_table(device), space)
            section["best_measured"] = best_measured(predictor, budget, [store, *known_stores], args.seeds)
        section["verdict"] = verdict(section, store)
        section["finalists_vs_standalone"] = finalists_vs_standalone(section, [store, *known_stores], args.seeds)
        save()
        print(f"{key}: {json.dumps(section['verdict'])}", flush=True)
    plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
