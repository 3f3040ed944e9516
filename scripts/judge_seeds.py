"""Does a finalists' judge of several training seeds pick better than one seed?

Reads the finalists of `search_vs_baselines.py --searched default` runs (their JSON files), trains every
finalist stand-alone with each judge seed as `quadnas search` judges finalists (the search's cache under
RUNS/finalists is read and extended, so seeds a search already trained are not trained again), and for
the first 1, 2, ... seeds reports what each search would have picked by the mean over those seeds, the
pick's stand-alone mean over the ground truth's seeds 0-2 where a file holds it, and the Kendall tau of
the judge's order against the ground truth over the finalists with one.

    python scripts/judge_seeds.py docs/figures/search_vs_baselines_clutter_judge4_cpu300.json --seeds 3 4 \
        --truth docs/figures/search_vs_baselines_clutter*.json --out docs/figures/judge_seeds.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from quadnas._search.finalists import DEFAULT_EPOCHS, FinalistCache, FinalistRecipe, cached_accuracy
from quadnas.data import load_dataset
from quadnas.progress import Progress, stderr_logging
from quadnas.space import SearchSpace

TRUTH_SEEDS = ("0", "1", "2")


def read_json(path: Path) -> Any:
    """A JSON file's content; a file that is missing or not JSON stops the script in one line."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        reason = type(e).__name__
        raise SystemExit(f"{path}: cannot read it as JSON ({reason}): pass a search_vs_baselines.py --out") from None


def ground_truth(paths: list[Path]) -> dict[str, float]:
    """Each arch's mean stand-alone accuracy over seeds 0-2, from search_vs_baselines.py JSON files."""
    found: dict[str, float] = {}
    for path in paths:
        for arch, seeds in read_json(path).get("standalone", {}).items():
            if all(s in seeds for s in TRUTH_SEEDS):
                found[arch] = float(np.mean([seeds[s] for s in TRUTH_SEEDS]))
    return found


def judged(finalists: list[dict[str, Any]], scores: dict[str, list[float]], k: int) -> list[str]:
    """The finalists by their mean over the first `k` judge seeds, best first (ties keep the search's order)."""
    order = sorted(range(len(finalists)), key=lambda i: (-float(np.mean(scores[finalists[i]["arch"]][:k])), i))
    return [finalists[i]["arch"] for i in order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="search_vs_baselines.py JSON files (--searched default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4], help="judge seeds, the search's first")
    parser.add_argument(
        "--epochs", type=float, default=DEFAULT_EPOCHS, help="each finalist's stand-alone epochs (the search's)"
    )
    parser.add_argument("--truth", type=Path, nargs="+", default=[], help="JSON files with stand-alone seeds 0-2")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where the searches keep finalists")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    truth = ground_truth([*args.runs, *args.truth])
    progress = Progress()
    result: dict[str, Any] = {"seeds": args.seeds, "epochs": args.epochs, "budgets": {}}
    for path in args.runs:
        doc = read_json(path)
        if not isinstance(doc, dict) or doc.get("recipe", {}).get("searched") != "default":
            raise SystemExit(f"{path}: not a search_vs_baselines.py run with --searched default: pass one")
        space = SearchSpace.load(doc["recipe"]["space"])
        recipe_data = doc["recipe"]["data"], doc["recipe"]["resolution"]
        data = load_dataset(*recipe_data, seed=0, channels=space.config.in_channels)
        cache = FinalistCache(args.runs_dir / "finalists", space, data)
        for budget, section in doc["budgets"].items():
            searches = {n: s["finalists"] for n, s in section["searches"].items() if s.get("finalists")}
            scores: dict[str, list[float]] = {}
            for finalists in searches.values():
                for f in finalists:
                    if f["arch"] in scores:
                        continue
                    arch = space.parse(f["arch"])
                    recipes = [FinalistRecipe(epochs=args.epochs, seed=seed) for seed in args.seeds]
                    # a training reports its steps on the quadnas logger (stderr) as it goes
                    scores[f["arch"]] = [
                        cached_accuracy(space, arch, data, r, cache, progress=progress) for r in recipes
                    ]
                    print(f"  {budget} {f['arch']}: {scores[f['arch']]}", flush=True)
            rows = []
            for k in range(1, len(args.seeds) + 1):
                picks = {name: judged(finalists, scores, k)[0] for name, finalists in searches.items()}
                known = [a for a in scores if a in truth]
                means = [float(np.mean(scores[a][:k])) for a in known]
                tau = float(kendalltau(means, [truth[a] for a in known]).statistic) if len(known) >= 3 else None
                picked = [truth.get(a) for a in picks.values()]
                offsets = [m - truth[a] for m, a in zip(means, known)]  # a judge seed's level against the truth's
                rows.append(
                    {
                        "judge_seeds": args.seeds[:k],
                        "picks": {n: {"arch": a, "standalone": truth.get(a)} for n, a in picks.items()},
                        "picks_mean": round(float(np.mean(picked)), 4) if None not in picked else None,
                        "kendall_tau": None if tau is None else round(tau, 3),
                        "finalists_with_truth": len(known),
                        "judge_minus_truth": {
                            "mean": round(float(np.mean(offsets)), 4),
                            "min": round(min(offsets), 4),
                            "max": round(max(offsets), 4),
                        }
                        if offsets
                        else None,
                    }
                )
                print(f"{budget}, judge seeds {args.seeds[:k]}: picks {picked}, tau {rows[-1]['kendall_tau']}")
            result["budgets"][budget] = {"scores": scores, "by_judge": rows}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    with stderr_logging():  # the trainings' progress lines
        raise SystemExit(main())
