"""Search results on disk: best.yaml, trials.csv, pareto.csv, pareto.png and breakdown.png."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml
from matplotlib.figure import Figure

from quadnas._version import __version__

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from quadnas.latency.predictor import LatencyPredictor
    from quadnas.study.results import Candidate, SearchResult


def write_results(
    result: SearchResult, predictor: LatencyPredictor, checkpoint: Path, checkpoint_sha: str
) -> dict[str, Path]:
    """Write every result file into the study's run folder; returns their paths."""
    out = result.run_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("best.yaml", "trials.csv", "pareto.csv", "pareto.png")}
    trials = result.study.trials_dataframe()
    trials.to_csv(paths["trials.csv"], index=False)
    pd.DataFrame([asdict(c) for c in result.pareto]).to_csv(paths["pareto.csv"], index=False)
    pareto_plot(result, paths["pareto.png"])
    if result.best is None:
        paths.pop("best.yaml")
        return paths
    breakdown = predictor.breakdown(predictor.space.parse(result.best.arch))
    record = best_record(result, predictor, breakdown, checkpoint, checkpoint_sha)
    paths["best.yaml"].write_text(yaml.safe_dump(record, sort_keys=False))
    paths["breakdown.png"] = out / "breakdown.png"
    breakdown_plot(result, breakdown, predictor.table.meta.device, paths["breakdown.png"])
    return paths


def best_record(
    result: SearchResult,
    predictor: LatencyPredictor,
    breakdown: pd.DataFrame,
    checkpoint: Path,
    checkpoint_hash: str,
) -> dict[str, Any]:
    """Everything needed to rebuild, export and trust the best arch (`breakdown`: its per-op latency)."""
    best, cfg, meta = _best(result), result.config, predictor.table.meta
    return {
        "arch": best.arch,
        "accuracy": round(best.evaluated_accuracy(), 6),
        "latency_ms": round(best.latency_ms, 4),
        "budget_ms": result.budget.ms,
        "budget_share": round(result.budget.share(best.latency_ms), 4),
        "latency_breakdown": [{"op": str(op), "ms": round(float(ms), 5)} for op, ms in zip(breakdown.op, breakdown.ms)],
        "device": cfg.device,
        "table": {
            "name": meta.device,
            "path": str(predictor.table.path) if predictor.table.path else None,
            "provenance": meta.provenance,
            "backend": meta.backend,
            "method": meta.method,
        },
        "space": {
            "name": predictor.space.name,
            "path": predictor.space.source,
            "fingerprint": predictor.space.fingerprint(),
        },
        "data": cfg.data,
        "resolution": cfg.resolution,
        "supernet": {"checkpoint": str(checkpoint), "sha256_16": checkpoint_hash, "width": result.supernet_width},
        "study": {
            "name": result.study.study_name,
            "trial": best.trial,
            "mode": cfg.mode,
            "sampler": cfg.sampler,
            "trials": len(result.candidates),
        },
        "quadnas_version": __version__,
    }


def pareto_plot(result: SearchResult, path: Path) -> None:
    """Write `pareto_figure(result)` to `path`."""
    pareto_figure(result).savefig(path)


def pareto_figure(result: SearchResult) -> Figure:
    """Accuracy vs predicted latency: feasible and infeasible trials, the front, the budget line.

    The legend sits beside the axes, so it never hides a point, and lists only what is drawn.
    """
    items = [c for c in result.candidates if c.accuracy is not None]
    fig = Figure(figsize=(8.5, 4.5), dpi=120, layout="constrained")
    ax = fig.subplots()
    for feasible, colour, label in ((True, "tab:blue", "within budget"), (False, "tab:red", "over budget")):
        group = [c for c in items if c.feasible(result.budget) == feasible]
        if group:
            ax.scatter(
                [c.latency_ms for c in group],
                [c.evaluated_accuracy() for c in group],
                s=14,
                c=colour,
                alpha=0.6,
                label=label,
            )
    front = result.pareto
    if front:
        ax.step(
            [c.latency_ms for c in front],
            [c.evaluated_accuracy() for c in front],
            where="post",
            c="k",
            lw=1,
            label="Pareto front",
        )
    ax.axvline(result.budget.ms, c="tab:green", ls="--", label=f"budget {result.budget.ms:g} ms")
    if result.best:
        _mark(ax, result.best)
    ax.set_xlabel(f"predicted latency on {result.config.device} (ms)")
    ax.set_ylabel("validation accuracy (inherited weights)")
    ax.set_title(f"{result.study.study_name}: {len(result.candidates)} trials")
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


OP_COLOURS = {
    "stem": "tab:gray",
    "quadra_block": "tab:blue",
    "downsample": "tab:orange",
    "head": "tab:purple",
    "calibration": "tab:olive",
}


def breakdown_plot(result: SearchResult, breakdown: pd.DataFrame, table_device: str, path: Path) -> None:
    """Where the best arch spends its predicted latency (`breakdown`): one bar per op it runs, in network order."""
    kinds = [op.split()[0] for op in breakdown.op]
    fig = Figure(figsize=(8, 0.28 * len(breakdown) + 1.6), dpi=120, layout="tight")
    ax = fig.subplots()
    y = range(len(breakdown))[::-1]
    ax.barh(list(y), breakdown.ms, color=[OP_COLOURS.get(k, "tab:gray") for k in kinds])
    ax.set_yticks(list(y), breakdown.op, fontsize=7)
    for yi, ms, share in zip(y, breakdown.ms, breakdown.share):
        ax.text(ms, yi, f" {ms:.3g} ms ({share:.0%})", va="center", fontsize=7)
    ax.set_xlim(0, breakdown.ms.max() * 1.3)
    ax.set_xlabel(f"predicted latency on {result.config.device} (ms)")
    best = _best(result)
    ax.set_title(
        f"{best.arch}\n{best.latency_ms:.3g} ms of the {result.budget.ms:g} ms budget "
        f"({result.budget.share(best.latency_ms):.0%}), table {table_device}",
        fontsize=8,
    )
    fig.savefig(path)


def _best(result: SearchResult) -> Candidate:
    """The best candidate of a result that has one (callers check `result.best` first)."""
    assert result.best is not None
    return result.best


def _mark(ax: Axes, best: Candidate) -> None:
    ax.scatter(
        [best.latency_ms],
        [best.evaluated_accuracy()],
        marker="*",
        s=160,
        c="gold",
        edgecolors="k",
        zorder=5,
        label="best",
    )
