"""Supernet ranking quality: Kendall tau and Spearman rho of inherited vs stand-alone accuracy,
and of zero-cost proxies as baselines.

Archs spread over the latency range of the space (random archs drawn with varied
identity probability, predicted on a shipped table, the one nearest each of evenly
spaced latencies kept) are each trained stand-alone from random init
(`QuadraNet(space, arch, classes)`) and evaluated with the weights they inherit from
a supernet trained by each method (`Evaluator`). Methods (`quadnas.bench.methods`,
all through `quadnas.supernet.train.SupernetTrainer`, so optimizer, schedule and data
order are the package's):

- `uniform`: the package default, one uniformly sampled path per step.
- `long`: `uniform` with `--long-factor` times the compute.
- `sandwich`: largest, smallest and 2 random paths per step; the largest learns from
  the labels, the others from its soft predictions (in-place distillation).
- `sandwich-labels`: the same paths, all on labels (the package's `TrainConfig.sandwich`).
- `fairnas`: strict fairness; per step a random permutation of the choices of every
  block, path m takes the m-th choice of each block, gradients of all paths are
  accumulated before one update (every choice of every block trained once per step).
- `proxy-w0.5`, `proxy-w0.25`: `uniform` on a supernet half / a quarter as wide (what
  `quadnas search` trains by default: `TrainConfig.for_search`), at a fraction of the cost;
  `proxy-w0.5-short`: the half-width one with half the steps; `proxy-w0.5-long`: with `--long-factor`
  times them; `proxy-w0.5-sandwich`: `sandwich` on the half-width supernet.
- `NAME@S` (e.g. `proxy-w0.25@1`): method NAME with supernet training seed S instead of `--seed`
  (init and data order), to see how far one method's tau moves with its supernet's seed.
- `kernel-transform`: `uniform` with OFA's kernel transformation: a smaller kernel is
  the centre of the next larger (transformed) kernel times a learned k^2 x k^2 matrix,
  one per depthwise conv of a block and kernel size, shared by its channels.

Stand-alone training uses the supernet's optimizer, schedule and layer-scale init
(`TrainConfig.layer_scale_init`; with ConvNeXt's 1e-6 every arch scored alike after
short training). `--repeat-seed N [M ...]` trains every arch stand-alone again with
each training seed: tau between two seeds is a rough ceiling for a supernet's tau
against this (noisy) ground truth, and every method is also scored against the mean.

Zero-cost proxies (`quadnas.supernet.proxies`: parameters, MACs, SynFlow, ZiCo, MeCo,
MeCo_opt; `--proxies`) score each arch's stand-alone network at its initialisation (the
network stand-alone training with `--seed` starts from) on the same 2 seeded training
batches of `--batch-size`; predicted latency is scored alongside as one more baseline.
Each proxy is also scored in combination with the `uniform` supernet: an arch's mean of
its two ranks (`uniform+zico`, ...), what a search would see with the proxy as an equal
partner of inherited accuracy. Every correlation comes with a 95% bootstrap interval
(1,000 resamples of the archs, the same resamples for every predictor), and every
predictor's lead in tau over the `uniform` supernet with a paired interval (both scored
on each resample): a lead whose interval stays above 0 is a clear win.

Methods run at equal compute: `--supernet-epochs` counts path-epochs (a method that
trains P paths per step takes 1/P of the steps of `uniform`), so each costs about
as much as `uniform`; `long` costs `--long-factor` times that.

`--train-device cuda` trains on a GPU; `--workers N` runs N trainings (stand-alone
archs, supernets) side by side in fresh processes. Results go to a JSON file that
is also a cache: stand-alone accuracies, finished methods and proxies are reused when the
recipe matches, so a rerun with other `--methods` only trains the new supernets.
Delete the JSON to start over.

    python scripts/rank_correlation.py                       # uniform on quadranet-t, mnist5k, 32 px
    python scripts/rank_correlation.py --methods fairnas,sandwich,sandwich-labels,kernel-transform,long
    python scripts/rank_correlation.py --repeat-seed 1            # the noise ceiling of tau
    python scripts/rank_correlation.py --train-device cuda --workers 12 --standalone-epochs 8 \
        --supernet-epochs 16 --repeat-seed 1 2 --methods uniform,fairnas,kernel-transform,long \
        --out docs/figures/gpu/rank_correlation_gpu.json --plot docs/figures/gpu/rank_correlation_gpu.png
    python scripts/rank_correlation.py --device vpu --max-latency 60 --archs 30 --standalone-epochs 4 \
        --repeat-seed 1 2 --workers 2 --out docs/figures/rank_correlation_proxies.json \
        --plot docs/figures/rank_correlation_proxies.png    # proxies vs the supernet on 30 archs
    python scripts/rank_correlation.py --quick --out /tmp/rc.json --plot /tmp/rc.png
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from scipy import stats
from torch.utils.data import TensorDataset

from quadnas.accelerator import torch_device
from quadnas.bench.methods import Method, methods, train_supernet_method
from quadnas.data import Dataset, load_dataset
from quadnas.errors import QuadnasError
from quadnas.latency.devices import load_device_table
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import Arch, SearchSpace
from quadnas.supernet.evaluate import Evaluator
from quadnas.supernet.proxies import PROXIES, PROXY_BATCHES, batches_of
from quadnas.supernet.standalone import standalone_accuracy, standalone_net
from quadnas.supernet.train import TrainConfig, steps_for

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
LatencyFn = Callable[[Sequence[Arch]], np.ndarray]
PROXY_SETTINGS = {"batches": PROXY_BATCHES}  # cached proxies are reused only with the same settings
RESAMPLES = 1000  # bootstrap resamples of the archs for each confidence interval
COMBINED_METHOD = "uniform"  # the package's default supernet, the partner of every proxy in a combination
# The recipe's record of a store moved to another data fingerprint (scripts/refingerprint_store.py): kept, not compared.
MOVED = "refingerprinted"


# ---- the recipe --------------------------------------------------------------
class Recipe(BaseModel):
    """Everything the stand-alone accuracies depend on; a cached JSON is reused only when it matches."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    space: str
    space_fingerprint: str
    data: str
    data_fingerprint: str
    resolution: int
    train_images: int
    val_images: int
    device: str
    latency_source: str
    max_latency_ms: float | None = None
    archs: int
    seed: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_fraction: float
    layer_scale_init: float
    standalone_epochs: float
    train_device: str = "cpu"

    def train_config(self) -> TrainConfig:
        """The optimizer settings shared by stand-alone and supernet training (32 px: no need to save memory)."""
        return TrainConfig(
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
            layer_scale_init=self.layer_scale_init,
            memory_efficient=False,
            resolution=self.resolution,
        )

    def steps(self, epochs: float) -> int:
        return steps_for(epochs, self.train_images, self.batch_size)


PROFILES: dict[str, dict[str, Any]] = {
    "full": dict(
        space="quadranet-t",
        data="mnist5k",
        archs=12,
        standalone_epochs=2.0,
        supernet_epochs=4.0,
        train_images=None,
        methods="uniform",
    ),
    "quick": dict(
        space="tiny",
        data="digits",
        archs=5,
        standalone_epochs=2.0,
        supernet_epochs=4.0,
        train_images=None,
        methods="uniform,fairnas",
    ),
}


# ---- latency and arch selection ------------------------------------------------
def latency_model(space: SearchSpace, device: str) -> tuple[LatencyFn, str]:
    """Predicted latency (ms) of archs on `device`: its table, or its cost model where the table lacks the space."""
    table = load_device_table(device)
    if table.meta.resolution == space.config.resolution and not table.missing(space.all_op_specs()):
        return LatencyPredictor(table, space).predict_many, f"table {table.name}"
    if table.meta.estimate is None:
        raise QuadnasError(
            f"latency table {table.name} does not cover space '{space.name}' and has no cost model: "
            f"measure it with `quadnas profile --space {space.source} --name {table.name}` or pass another --device"
        )
    model, stem_patch = table.meta.estimate.device_model(), space.config.stem_patch
    spec_ms = functools.cache(lambda spec: model.spec_ms(spec, stem_patch))

    def predict(archs: Sequence[Arch]) -> np.ndarray:
        return np.array([sum(spec_ms(s) for s in space.op_specs(a)) for a in archs])

    return predict, f"cost model of table {table.name} (its rows do not cover space '{space.name}')"


def spread_archs(
    space: SearchSpace, latency: LatencyFn, n: int, seed: int, pool: int = 2000, max_ms: float | None = None
) -> list[Arch]:
    """`n` distinct archs whose latencies lie nearest `n` evenly spaced points of the pool's range
    (up to `max_ms`, if given).

    The pool draws each arch with its own identity probability (uniform in [0, 1]), so
    it reaches from near-empty to near-full networks, which uniform sampling does not.
    """
    rng = random.Random(seed)
    has_identity = space.config.choices.identity
    candidates = {space.sample(rng, identity=rng.random() if has_identity else 0.0) for _ in range(pool)}
    ordered = sorted(candidates, key=str)
    ms = latency(ordered)
    if max_ms is not None:
        keep = ms <= max_ms
        ordered, ms = [a for a, k in zip(ordered, keep) if k], ms[keep]
    if len(ordered) < n:
        raise QuadnasError(
            f"space '{space.name}' gave only {len(ordered)} distinct archs"
            f"{'' if max_ms is None else f' under {max_ms:g} ms'}: ask for fewer --archs"
            f"{'' if max_ms is None else ' or raise --max-latency'}"
        )
    chosen: list[int] = []
    for target in np.linspace(ms.min(), ms.max(), n):
        free = [i for i in np.argsort(np.abs(ms - target), kind="stable") if i not in chosen]
        chosen.append(int(free[0]))
    return [ordered[i] for i in sorted(chosen, key=lambda i: ms[i])]


# ---- results ----------------------------------------------------------------
def correlations(standalone: Sequence[float], predicted: Sequence[float]) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho with p-values and 95% bootstrap intervals (`bootstrap`);
    None where undefined (a constant side)."""
    tau = stats.kendalltau(standalone, predicted)
    rho = stats.spearmanr(standalone, predicted)
    taus, rhos = bootstrap(standalone, predicted)

    def clean(v: float) -> float | None:
        return None if math.isnan(v) else round(float(v), 4)

    return {
        "tau": clean(tau.statistic),
        "tau_p": clean(tau.pvalue),
        "tau_ci": interval(taus),
        "rho": clean(rho.statistic),
        "rho_p": clean(rho.pvalue),
        "rho_ci": interval(rhos),
    }


def bootstrap(
    truth: Sequence[float], predicted: Sequence[float], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Kendall tau-b and Spearman rho on `resamples` resamples of the archs (drawn with replacement).

    The resamples depend only on `seed` and the number of archs, so every predictor of one
    experiment is scored on the same ones. NaN where a resample leaves a side constant.
    """
    x, y = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    rows = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return kendall_tau_b(x[rows], y[rows]), spearman_rho(x[rows], y[rows])


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair: Σ sign(dx) sign(dy) / sqrt(Σ sign(dx)² Σ sign(dy)²) over pairs."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        tau: np.ndarray = (sx * sy).sum(axis=(1, 2)) / np.sqrt((sx**2).sum(axis=(1, 2)) * (sy**2).sum(axis=(1, 2)))
    return tau


def spearman_rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair: Pearson correlation of the ranks (ties get their mean rank)."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho: np.ndarray = (rx * ry).sum(axis=1) / np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    return rho


def interval(values: np.ndarray) -> list[float] | None:
    """The 2.5th and 97.5th percentiles of the finite values; None if fewer than half are finite."""
    finite = values[np.isfinite(values)]
    if len(finite) < len(values) / 2:
        return None
    return [round(float(v), 4) for v in np.percentile(finite, [2.5, 97.5])]


def load_cache(path: Path, recipe: Recipe) -> dict[str, Any]:
    """The previous results for the same recipe, else an empty result."""
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        if old is not None and _recipe_of(old) == recipe:
            if old.get("proxy_settings") != PROXY_SETTINGS:
                for entry in old["archs"]:
                    entry.pop("proxies", None)
                    entry.pop("proxy_seconds", None)
            moved = {MOVED: old["recipe"][MOVED]} if MOVED in old["recipe"] else {}
            return {"proxies": {}, **old, "recipe": {**recipe.model_dump(), **moved}, "proxy_settings": PROXY_SETTINGS}
        print(f"{path}: other recipe or unreadable; starting fresh")
    return {
        "recipe": recipe.model_dump(),
        "proxy_settings": PROXY_SETTINGS,
        "archs": [],
        "methods": {},
        "proxies": {},
        "noise_ceiling": {},
        "runs": [],
    }


def _recipe_of(result: dict[str, Any]) -> Recipe | None:
    """The result's recipe, without the record of a move to another data fingerprint (MOVED)."""
    recipe = result.get("recipe")
    compared = {k: v for k, v in recipe.items() if k != MOVED} if isinstance(recipe, dict) else None
    try:
        return Recipe.model_validate(compared)
    except ValueError:
        return None


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Atomic write, so an interrupted run keeps the previous results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)


def _two_places(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _headline(entry: dict[str, Any]) -> dict[str, Any]:
    """The scores a summary shows: against the seeds' mean where there are several seeds, else the first seed."""
    mean: dict[str, Any] | None = entry.get("vs_mean_of_seeds")
    return entry if mean is None else mean


def predictors(result: dict[str, Any]) -> list[tuple[str, list[float], str, dict[str, Any]]]:
    """(label, one value per arch, axis label, scores) for every supernet method and proxy scored."""
    archs = result["archs"]
    rows = [
        (f"supernet {name}", [100 * a["inherited"][name] for a in archs], "inherited-weight accuracy (%)", m)
        for name, m in result["methods"].items()
    ]
    for name, p in result.get("proxies", {}).items():
        if name == "latency":
            rows.append((f"proxy {name}", [a["latency_ms"] for a in archs], "predicted latency (ms)", p))
        else:
            rows.append((f"proxy {name}", [a["proxies"][name] for a in archs], name, p))
    for name, c in result.get("combinations", {}).items():
        rows.append((name, combined(archs, name), "mean rank of the two", c))
    return rows


def combined(archs: list[dict[str, Any]], name: str) -> list[float]:
    """The combination `name` ("<method>+<proxy>"): each arch's mean rank under the method's inherited
    accuracy and under the proxy (higher is better for both), the search's score with the proxy as
    an equal partner."""
    method, proxy = name.split("+")
    inherited = stats.rankdata([a["inherited"][method] for a in archs])
    return list((inherited + stats.rankdata([a["proxies"][proxy] for a in archs])) / 2)


def plot(result: dict[str, Any], path: Path) -> None:
    """One panel per method and proxy (its value vs stand-alone accuracy, coloured by latency, with tau and
    rho), and a summary panel: every predictor's tau with its 95% bootstrap interval, and the noise ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs, r = result["archs"], result["recipe"]
    seeds = 1 + len(set.intersection(*(set(a.get("standalone_repeats", {})) for a in archs)))
    standalone = [100 * acc for acc in mean_of_seeds(result)]
    x_label = "stand-alone accuracy (%)" if seeds == 1 else f"stand-alone accuracy (%, mean of {seeds} seeds)"
    latency = [a["latency_ms"] for a in archs]
    rows = predictors(result)
    columns = min(4, len(rows) + 1)
    lines = math.ceil((len(rows) + 1) / columns)
    fig, axes = plt.subplots(
        lines, columns, figsize=(4.6 * columns + 1, 4.2 * lines), squeeze=False, layout="constrained"
    )
    for ax, (label, values, y_label, m) in zip(axes.flat, rows):
        points = ax.scatter(standalone, values, c=latency, cmap="viridis", s=36, edgecolors="k", linewidths=0.4)
        if min(values) > 0 and max(values) > 100 * min(values):
            ax.set_yscale("log")
        if "vs_mean_of_seeds" in m:
            mean = m["vs_mean_of_seeds"]
            title = (
                f"{label}: τ = {_two_places(mean['tau'])}, ρ = {_two_places(mean['rho'])}"
                f"\n(against seed {r['seed']} alone: τ = {_two_places(m['tau'])})"
            )
        else:
            title = f"{label}: τ = {_two_places(m['tau'])}, ρ = {_two_places(m['rho'])}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
    summary = axes.flat[len(rows)]
    for i, (*_, m) in enumerate(rows):
        h = _headline(m)
        if h["tau"] is None:
            continue
        low, high = h["tau_ci"] or (h["tau"], h["tau"])
        summary.errorbar(h["tau"], i, xerr=[[h["tau"] - low], [high - h["tau"]]], fmt="o", color="C0", capsize=3)
    for noise in result.get("noise_ceiling", {}).values():
        if noise["tau"] is not None:
            summary.axvline(noise["tau"], color="grey", ls="--", lw=1)
    summary.set_yticks(range(len(rows)), [label for label, *_ in rows], fontsize=9)
    summary.invert_yaxis()
    summary.set_xlim(-1, 1)
    summary.axvline(0, color="k", lw=0.5)
    against = f"mean of {seeds} seeds" if seeds > 1 else f"seed {r['seed']}"
    summary.set_title(f"Kendall τ against the {against},\n95% bootstrap intervals (dashed: seed vs seed)", fontsize=10)
    summary.grid(alpha=0.3, axis="x")
    for ax in axes.flat[len(rows) + 1 :]:
        ax.set_visible(False)
    fig.colorbar(points, ax=list(axes.flat[: len(rows)]), label=f"predicted latency (ms, {r['device']})")
    title = f"{r['space']} on {r['data']} at {r['resolution']} px, {len(archs)} archs: Kendall τ / Spearman ρ"
    for seed, noise in result.get("noise_ceiling", {}).items():
        title += f"\nstand-alone seed {r['seed']} vs seed {seed}: τ = {_two_places(noise['tau'])}"
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _cell(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return f"{'n/a':>23s}"
    return f"{value:+.3f} " + ("[  n/a ,   n/a ]" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]")


def table(result: dict[str, Any]) -> list[str]:
    """The printed summary: tau and rho with 95% intervals of every predictor, then the noise ceiling."""
    archs, seed = result["archs"], result["recipe"]["seed"]
    seeds = 1 + len(set.intersection(*(set(a.get("standalone_repeats", {})) for a in archs)))
    lines = [
        f"Against stand-alone accuracy (seed {seed}"
        + (f"; and the mean of {seeds} seeds" if seeds > 1 else "")
        + f"), {len(archs)} archs, 95% bootstrap intervals:",
        f"{'':22s} {'Kendall tau':^23s}  {'Spearman rho':^23s}"
        + (f"  | {'tau, mean of seeds':^23s}" if seeds > 1 else "")
        + (f"  | {'tau lead over ' + COMBINED_METHOD:^23s}" if COMBINED_METHOD in result["methods"] else ""),
    ]
    for label, _, _, m in predictors(result):
        line = f"{label:22s} {_cell(m['tau'], m['tau_ci'])}  {_cell(m['rho'], m['rho_ci'])}"
        if "vs_mean_of_seeds" in m:
            line += f"  | {_cell(m['vs_mean_of_seeds']['tau'], m['vs_mean_of_seeds']['tau_ci'])}"
        if "tau_lead" in m:
            line += f"  | {_cell(m['tau_lead']['lead'], m['tau_lead']['ci'])}"
        lines.append(line)
    for s, noise in result.get("noise_ceiling", {}).items():
        label = f"ceiling: seed {seed} vs {s}"
        lines.append(f"{label:22s} {_cell(noise['tau'], noise['tau_ci'])}  {_cell(noise['rho'], noise['rho_ci'])}")
    for name, group in result.get("over_supernet_seeds", {}).items():
        taus = ", ".join(f"{s}: {t:+.3f}" for s, t in group["tau"].items())
        lines.append(
            f"{name} over supernet seeds ({taus}): tau mean {group['mean']:+.3f}, range "
            f"{group['min']:+.3f} to {group['max']:+.3f}"
        )
    return lines


def over_supernet_seeds(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each method trained with several supernet seeds (NAME and NAME@S): its tau per seed (against the mean
    of the stand-alone seeds where there are several), their mean and range: a supernet's seed moves tau too."""
    seed = str(result["recipe"]["seed"])
    groups: dict[str, dict[str, float]] = {}
    for name, m in result["methods"].items():
        base, _, at = name.partition("@")
        groups.setdefault(base, {})[at or seed] = m.get("vs_mean_of_seeds", m)["tau"]
    return {
        base: {
            "tau": taus,
            "mean": float(np.mean(list(taus.values()))),
            "min": min(taus.values()),
            "max": max(taus.values()),
        }
        for base, taus in groups.items()
        if len(taus) > 1
    }


# ---- the run ----------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny space, digits, 5 archs, uniform,fairnas: for tests")
    parser.add_argument("--space", help="search space (default quadranet-t; tiny with --quick)")
    parser.add_argument("--data", help="dataset (default mnist5k; digits with --quick)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--train-images", type=int, help="use only the first N training images (default all)")
    parser.add_argument("--device", default="cpu", help="latency table the archs are spread by (default cpu)")
    parser.add_argument(
        "--max-latency",
        type=float,
        metavar="MS",
        help="spread the archs only up to this latency on --device (default: the whole range)",
    )
    parser.add_argument("--archs", type=int, help="number of archs (default 12; 5 with --quick)")
    parser.add_argument(
        "--methods",
        help="comma-separated: uniform,long,sandwich,sandwich-labels,fairnas,"
        "kernel-transform,proxy-w0.5,proxy-w0.25,proxy-w0.5-short,proxy-w0.5-long,proxy-w0.5-sandwich; "
        "NAME@S: NAME with supernet seed S "
        "(default uniform; uniform,fairnas with --quick)",
    )
    parser.add_argument(
        "--proxies",
        default=",".join(PROXIES),
        help=f"comma-separated zero-cost proxies to score, or none (default {','.join(PROXIES)})",
    )
    parser.add_argument("--supernet-epochs", type=float, help="path-epochs per method (default 4)")
    parser.add_argument("--standalone-epochs", type=float, help="epochs per stand-alone arch (default 2)")
    parser.add_argument("--long-factor", type=float, default=2.0, help="compute of `long` relative to uniform")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="linear warm-up share of the steps")
    parser.add_argument(
        "--layer-scale-init",
        type=float,
        default=TrainConfig().layer_scale_init,
        help="initial layer scale of every block, supernet and stand-alone (default: the package's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeat-seed",
        type=int,
        nargs="+",
        default=[],
        metavar="SEED",
        help="also train every arch stand-alone with these training seeds (the noise ceiling of tau)",
    )
    parser.add_argument("--train-device", default="cpu", help="torch device that trains (cpu, cuda; default cpu)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes training archs and supernets side by side (default 1: this one)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=FIGURES / "rank_correlation.json")
    parser.add_argument("--plot", type=Path, default=FIGURES / "rank_correlation.png")
    args = parser.parse_args(argv)
    args.command = " ".join(["python scripts/rank_correlation.py", *(sys.argv[1:] if argv is None else argv)])
    for key, value in PROFILES["quick" if args.quick else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def subset(data: Dataset, n: int | None) -> Dataset:
    if n is None:
        return data
    if not 0 < n <= len(data.train):
        raise QuadnasError(f"--train-images {n} is outside 1..{len(data.train)} (the training images of {data.name})")
    x, y = data.train.tensors
    return replace(data, train=TensorDataset(x[:n], y[:n]))


@dataclass(frozen=True)
class Context:
    """What every training job needs; sent once to each worker process."""

    space: SearchSpace
    data: Dataset
    recipe: Recipe
    archs: tuple[Arch, ...]
    methods: dict[str, Method]
    supernet_epochs: float
    proxies: tuple[str, ...]

    def on_device(self) -> Context:
        """The same context with the data on the recipe's training device."""
        device = torch.device(self.recipe.train_device)
        moved = {
            split: TensorDataset(*(t.to(device) for t in getattr(self.data, split).tensors))
            for split in ("train", "val")
        }
        return replace(self, data=replace(self.data, **moved))


_CONTEXT: Context | None = None  # this process's context (set by `jobs`, or by a worker's initializer)


def _use_context(context: Context, threads: int) -> None:
    global _CONTEXT
    torch.set_num_threads(threads)
    _CONTEXT = context.on_device()


class StandaloneJob(NamedTuple):
    """Train arch number `arch` alone with training seed `seed`; its result is the validation accuracy."""

    arch: int
    seed: int


class MethodJob(NamedTuple):
    """Train the supernet of method `name`; its result holds every arch's inherited accuracy."""

    name: str


class ProxyJob(NamedTuple):
    """Score arch number `arch` with every wanted proxy; its result holds their values and seconds."""

    arch: int


Job = StandaloneJob | MethodJob | ProxyJob


def run_job(job: Job) -> Any:
    """The result of one job, in this process's context."""
    c = _CONTEXT
    if isinstance(job, StandaloneJob):
        config = c.recipe.train_config().model_copy(update={"seed": job.seed})
        return standalone_accuracy(
            c.space,
            c.archs[job.arch],
            c.data,
            config,
            c.recipe.steps(c.recipe.standalone_epochs),
            c.recipe.warmup_fraction,
        )
    if isinstance(job, ProxyJob):
        return proxy_scores(c, job.arch)
    t0 = time.perf_counter()
    model, steps, paths = train_supernet_method(
        c.methods[job.name], c.space, c.data, c.recipe.train_config(), c.supernet_epochs, c.recipe.warmup_fraction
    )
    t1 = time.perf_counter()
    evaluator = Evaluator(model, c.data)
    inherited = [evaluator.accuracy(arch) for arch in c.archs]
    return {
        "inherited": inherited,
        "steps": steps,
        "paths": paths,
        "train_seconds": round(t1 - t0, 1),
        "eval_seconds": round(time.perf_counter() - t1, 1),
    }


def proxy_scores(c: Context, arch: int) -> dict[str, dict[str, float]]:
    """Every wanted proxy of the network stand-alone training of `arch` starts from (seed `--seed`),
    on the same seeded training batches for every arch."""
    torch.manual_seed(c.recipe.seed)
    x = c.data.train.tensors[0]
    net = standalone_net(c.space, c.archs[arch], c.data.num_classes, c.recipe.layer_scale_init).to(x.device)
    batches = batches_of(c.data.train, c.recipe.batch_size, PROXY_SETTINGS["batches"], c.recipe.seed)
    values, seconds = {}, {}
    for name in c.proxies:
        t0 = time.perf_counter()
        values[name] = PROXIES[name](net, batches)
        seconds[name] = round(time.perf_counter() - t0, 3)
    return {"values": values, "seconds": seconds}


def jobs(
    fn: Callable[[Any], Any], todo: Sequence[Any], context: Context, workers: int, threads: int
) -> Iterator[tuple[Any, Any]]:
    """`(job, fn(job))` for every job, as they finish: here, or in `workers` fresh processes."""
    if not todo:
        return
    if workers == 1:
        _use_context(context, threads)
        for job in todo:
            yield job, fn(job)
        return
    spawn = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(
        min(workers, len(todo)), mp_context=spawn, initializer=_use_context, initargs=(context, threads)
    ) as pool:
        futures = {pool.submit(fn, job): job for job in todo}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:  # a failed job or Ctrl-C: do not wait for the queued ones
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train what the JSON cache lacks, write the JSON and the plot; returns the result."""
    began = time.perf_counter()
    torch.set_num_threads(args.threads)
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    available = with_seeds(methods(args.long_factor), wanted)
    unknown = [m for m in wanted if m not in available]
    if unknown or not wanted:
        raise QuadnasError(f"unknown method(s) {', '.join(unknown) or '(none given)'}: use {', '.join(available)}")
    proxies = [] if args.proxies.strip() == "none" else [p.strip() for p in args.proxies.split(",") if p.strip()]
    unknown = [p for p in proxies if p not in PROXIES]
    if unknown:
        raise QuadnasError(f"unknown proxy(ies) {', '.join(unknown)}: use {', '.join(PROXIES)} or none")
    check_args(args)
    space = SearchSpace.load(args.space)
    space.check_resolution(args.resolution)
    data = subset(
        load_dataset(args.data, args.resolution, seed=args.seed, channels=space.config.in_channels), args.train_images
    )
    latency, source = latency_model(space, args.device)
    recipe = Recipe(
        space=space.name,
        space_fingerprint=space.fingerprint(),
        data=data.name,
        data_fingerprint=data.fingerprint,
        resolution=args.resolution,
        train_images=len(data.train),
        val_images=len(data.val),
        device=args.device,
        latency_source=source,
        archs=args.archs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_fraction=args.warmup_fraction,
        layer_scale_init=args.layer_scale_init,
        standalone_epochs=args.standalone_epochs,
        train_device=args.train_device,
        max_latency_ms=args.max_latency,
    )
    result = load_cache(args.out, recipe)
    archs = spread_archs(space, latency, args.archs, args.seed, max_ms=args.max_latency)
    cached = {a["arch"]: a for a in result["archs"]}
    result["archs"] = [
        cached.get(str(a), {"arch": str(a), "latency_ms": round(float(t), 3), "inherited": {}})
        for a, t in zip(archs, latency(archs))
    ]
    context = Context(space, data, recipe, tuple(archs), available, args.supernet_epochs, tuple(proxies))
    todo: list[Job] = [
        *missing_methods(wanted, available, args.supernet_epochs, result),
        *missing_standalone(recipe.seed, args.repeat_seed, result),
        *missing_proxies(proxies, result),
    ]  # the long supernet jobs first, so workers finish together
    began_jobs = time.perf_counter()
    for job, done in jobs(run_job, todo, context, args.workers, args.threads):
        store(job, done, recipe.seed, available, args.supernet_epochs, result)
        print(f"{time.perf_counter() - began_jobs:6.0f} s  {describe(job, done, result)}", flush=True)
        write_json(args.out, result)
    score(result, args.repeat_seed)
    result["runs"].append(
        {
            "command": args.command,
            "methods": wanted,
            "proxies": proxies,
            "threads": args.threads,
            "workers": args.workers,
            "wall_seconds": round(time.perf_counter() - began, 1),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    write_json(args.out, result)
    plot(result, args.plot)
    return result


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for arguments argparse cannot judge alone; drops repeated repeat seeds."""
    if args.workers < 1:
        raise QuadnasError(f"--workers {args.workers} must be 1 or more")
    if args.archs < 2:
        raise QuadnasError(f"--archs {args.archs}: a rank correlation needs at least 2 archs")
    if args.seed in args.repeat_seed:
        raise QuadnasError(f"--repeat-seed {args.seed} is the first seed (--seed): give other seeds")
    args.repeat_seed = list(dict.fromkeys(args.repeat_seed))
    torch_device(args.train_device)


def missing_standalone(seed: int, repeat_seeds: Sequence[int], result: dict[str, Any]) -> list[StandaloneJob]:
    """The stand-alone trainings the cache lacks."""
    archs = result["archs"]

    def has(i: int, s: int) -> bool:
        return "standalone_accuracy" in archs[i] if s == seed else str(s) in archs[i].get("standalone_repeats", {})

    return [StandaloneJob(i, s) for s in (seed, *repeat_seeds) for i in range(len(archs)) if not has(i, s)]


def with_seeds(available: dict[str, Method], wanted: Sequence[str]) -> dict[str, Method]:
    """`available`, plus each wanted `NAME@S`: method NAME with supernet training seed S."""
    seeded = {}
    for name in wanted:
        base, at, seed = name.partition("@")
        if at and base in available and seed.isdigit():
            seeded[name] = replace(available[base], seed=int(seed))
    return {**available, **seeded}


def missing_methods(
    wanted: Sequence[str], available: dict[str, Method], epochs: float, result: dict[str, Any]
) -> list[MethodJob]:
    """The supernets not cached with the same budget."""
    todo = []
    for name in wanted:
        old = result["methods"].get(name, {})
        scored_all = all(name in a["inherited"] for a in result["archs"])
        if scored_all and (old.get("supernet_epochs"), old.get("compute")) == (epochs, available[name].compute):
            print(f"{name}: cached")
        else:
            todo.append(MethodJob(name))
    return todo


def missing_proxies(wanted: Sequence[str], result: dict[str, Any]) -> list[ProxyJob]:
    """The archs that lack one of the wanted proxies (cached proxies are kept only with the same `PROXY_SETTINGS`)."""
    return [ProxyJob(i) for i, a in enumerate(result["archs"]) if not set(wanted) <= set(a.get("proxies", {}))]


def store(job: Job, done: Any, seed: int, available: dict[str, Method], epochs: float, result: dict[str, Any]) -> None:
    """Put a finished job's figures into the result (scores come later, from `score`)."""
    archs = result["archs"]
    if isinstance(job, ProxyJob):
        archs[job.arch].setdefault("proxies", {}).update(done["values"])
        archs[job.arch].setdefault("proxy_seconds", {}).update(done["seconds"])
        return
    if isinstance(job, StandaloneJob):
        if job.seed == seed:
            archs[job.arch]["standalone_accuracy"] = done
        else:
            archs[job.arch].setdefault("standalone_repeats", {})[str(job.seed)] = done
        return
    name = job.name
    for entry, inherited in zip(archs, done["inherited"]):
        entry["inherited"][name] = inherited
    result["methods"][name] = {
        "supernet_epochs": epochs,
        "compute": available[name].compute,
        "steps": done["steps"],
        "paths_per_step": done["paths"],
        "train_seconds": done["train_seconds"],
        "eval_seconds": done["eval_seconds"],
    }


def describe(job: Job, done: Any, result: dict[str, Any]) -> str:
    """A progress line for a finished job."""
    if isinstance(job, StandaloneJob):
        entry = result["archs"][job.arch]
        return (
            f"stand-alone arch {job.arch + 1}/{len(result['archs'])} seed {job.seed}: "
            f"{entry['latency_ms']:.1f} ms, acc {done:.3f}"
        )
    if isinstance(job, ProxyJob):
        return f"proxies of arch {job.arch + 1}/{len(result['archs'])}: {sum(done['seconds'].values()):.1f} s"
    return f"supernet {job.name}: {done['steps']} steps of {done['paths']} path(s), {done['train_seconds']:.0f} s"


def mean_of_seeds(result: dict[str, Any]) -> list[float]:
    """Each arch's stand-alone accuracy averaged over the first seed and every repeat seed all archs have."""
    archs = result["archs"]
    complete = set.intersection(*(set(a.get("standalone_repeats", {})) for a in archs))
    return [
        float(np.mean([a["standalone_accuracy"], *(a["standalone_repeats"][s] for s in sorted(complete))]))
        for a in archs
    ]


def score(result: dict[str, Any], repeat_seeds: Sequence[int]) -> None:
    """Kendall tau and Spearman rho with bootstrap intervals: each method and each proxy (and predicted
    latency) against stand-alone accuracy (and, with several seeds, against their mean), and each
    repeat seed against the first (the noise ceiling)."""
    archs = result["archs"]
    standalone = [a["standalone_accuracy"] for a in archs]
    for s in repeat_seeds:
        result.setdefault("noise_ceiling", {})[str(s)] = correlations(
            standalone, [a["standalone_repeats"][str(s)] for a in archs]
        )
    seeds_mean = mean_of_seeds(result) if result.get("noise_ceiling") else None

    def scores(values: Sequence[float]) -> dict[str, Any]:
        entry = correlations(standalone, values)
        if seeds_mean is not None:
            entry["vs_mean_of_seeds"] = correlations(seeds_mean, values)
        return entry

    for name, m in result["methods"].items():
        m.update(scores([a["inherited"][name] for a in archs]))
    result["over_supernet_seeds"] = over_supernet_seeds(result)
    scored = [name for name in PROXIES if all(name in a.get("proxies", {}) for a in archs)]
    result["proxies"] = {
        name: {
            **scores([a["proxies"][name] for a in archs]),
            "seconds_per_arch": round(float(np.mean([a["proxy_seconds"][name] for a in archs])), 3),
        }
        for name in scored
    }
    result["proxies"]["latency"] = scores([a["latency_ms"] for a in archs])
    pairs = [f"{COMBINED_METHOD}+{name}" for name in scored] if COMBINED_METHOD in result["methods"] else []
    result["combinations"] = {name: scores(combined(archs, name)) for name in pairs}
    if COMBINED_METHOD in result["methods"]:
        truth = standalone if seeds_mean is None else seeds_mean
        reference = [a["inherited"][COMBINED_METHOD] for a in archs]
        reference_taus, _ = bootstrap(truth, reference)  # once: every predictor is paired with the same resamples
        for _, values, _, entry in predictors(result):
            entry["tau_lead"] = tau_lead(truth, values, reference, reference_taus)


def tau_lead(
    truth: Sequence[float], values: Sequence[float], reference: Sequence[float], reference_taus: np.ndarray
) -> dict[str, Any]:
    """How far `values` rank the archs better than `reference` (Kendall tau against `truth`, the
    difference), with a 95% interval from the same bootstrap resamples for both (`reference_taus`:
    `reference`'s taus on them): paired, so a lead whose interval stays above 0 is one the archs'
    sampling cannot explain."""
    ours, _ = bootstrap(truth, values)
    lead = stats.kendalltau(truth, values).statistic - stats.kendalltau(truth, reference).statistic
    return {
        "over": COMBINED_METHOD,
        "lead": None if math.isnan(lead) else round(float(lead), 4),
        "ci": interval(ours - reference_taus),
    }


def main(argv: list[str] | None = None) -> int:
    try:
        result = run(parse_args(argv))
    except QuadnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(table(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
