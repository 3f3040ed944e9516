"""Move a `rank_correlation.py` JSON to today's data fingerprint, after checking that today's code
reproduces its stand-alone accuracies.

A data fingerprint names the data a store was trained on; when the way it is computed changes
(the data layer now hashes a manifest, not decoded pixels), every committed store is refused by the
scripts that reuse it (`search_vs_baselines.py --known`, `rank_correlation.py`'s own cache), although
the images, the split and the normalisation are the same. This script retrains `--check` of the
store's (arch, seed) pairs with today's code and the store's recipe (`quadnas.bench.standalone_pool`;
the archs of lowest latency first, so the check is cheap, the all-identity arch among them when the
store has it: with no quadratic conv its training is exactly reproducible, which tests the data, the
init and the order) and writes every pair's stored and new accuracy into the file's recipe
(`refingerprinted`). The file moves to today's fingerprint only if the mean difference is within
the store's seed-to-seed spread (other pairs differ in floating-point order, like another training
seed would); otherwise it is left as it was and the script exits 1.

    python scripts/refingerprint_store.py docs/figures/rank_correlation_clutter.json --check 4
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from quadnas.bench.standalone_pool import StandaloneRecipe, train_one
from quadnas.data import load_dataset
from quadnas.space import SearchSpace


def seed_spread(archs: list[dict[str, Any]]) -> float:
    """Mean over archs of the standard deviation of their stand-alone accuracies across training seeds."""
    spreads = []
    for a in archs:
        values = [a["standalone_accuracy"], *a.get("standalone_repeats", {}).values()]
        if len(values) > 1:
            spreads.append(float(np.std(values, ddof=1)))
    if not spreads:
        raise SystemExit("the store has one training seed per arch: no spread to judge the check by")
    return float(np.mean(spreads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path, help="a rank_correlation.py JSON")
    parser.add_argument("--check", type=int, default=4, help="(arch, seed) pairs to retrain")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    try:
        result = json.loads(args.store.read_text())
        recipe, archs = result["recipe"], result["archs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        parser.exit(2, f"{args.store}: not a JSON file of rank_correlation.py ({type(e).__name__}): pass its --out\n")
    space = SearchSpace.load(recipe["space"])
    data = load_dataset(recipe["data"], recipe["resolution"], seed=0, channels=space.config.in_channels)
    if recipe["data_fingerprint"] == data.fingerprint:
        print(f"{args.store}: already on data fingerprint {data.fingerprint}")
        return

    trained = sorted((a for a in archs if a.get("standalone_accuracy") is not None), key=lambda a: a["latency_ms"])
    chosen = trained[: args.check]
    how = StandaloneRecipe(
        data=recipe["data"],
        resolution=recipe["resolution"],
        batch_size=recipe["batch_size"],
        lr=recipe["lr"],
        weight_decay=recipe["weight_decay"],
        warmup=recipe["warmup_fraction"],
    )
    n = len(chosen)
    print(f"retraining {n} archs of {args.store} with seed {recipe['seed']} ...", flush=True)
    with ProcessPoolExecutor(min(args.workers, n), mp_context=get_context("spawn")) as pool:
        archs_text = [a["arch"] for a in chosen]
        now = list(pool.map(train_one, [space.name] * n, archs_text, [recipe["seed"]] * n,
                            [recipe["standalone_epochs"]] * n, [how] * n))  # fmt: skip

    pairs = [
        {"arch": a["arch"], "seed": recipe["seed"], "stored": a["standalone_accuracy"], "now": round(acc, 4)}
        for a, acc in zip(chosen, now, strict=True)
    ]
    differences = [p["now"] - p["stored"] for p in pairs]
    spread = seed_spread(trained)
    mean_difference = float(np.mean(differences))
    check = {
        "from": recipe["data_fingerprint"],
        "to": data.fingerprint,
        "pairs": pairs,
        "mean_difference": round(mean_difference, 4),
        "seed_spread": round(spread, 4),
    }
    for p in pairs:
        print(f"  {p['arch']}: stored {p['stored']:.3f}, now {p['now']:.3f}")
    verdict = f"mean difference {mean_difference:+.4f} against a seed spread of {spread:.4f}"
    if abs(mean_difference) > spread:
        raise SystemExit(f"{args.store} left as it was: {verdict}")
    recipe["refingerprinted"] = check
    recipe["data_fingerprint"] = data.fingerprint
    args.store.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.store}: moved to data fingerprint {data.fingerprint} ({verdict})")


if __name__ == "__main__":
    main()
