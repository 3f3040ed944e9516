"""Search results on disk: best.yaml, trials.csv, pareto.csv, pareto.png, breakdown.png (each device in each) and,
when finalists were trained, finalists.csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from quadnas._search.names import per_device
from quadnas._search.results import rank_feasible
from quadnas._version import __version__
from quadnas.record import (
    DeviceRecord,
    Finalist,
    FinalistsInfo,
    OpLatency,
    RerankInfo,
    SearchRecord,
    SpaceInfo,
    StudyInfo,
    SupernetInfo,
    TableInfo,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from quadnas._search.results import Candidate, SearchResult
    from quadnas._search.targets import Target, Targets


def write_results(result: SearchResult, targets: Targets, checkpoint: Path, checkpoint_sha: str) -> dict[str, Path]:
    """Write every result file into the study's run folder; returns their paths."""
    out = result.run_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("best.yaml", "trials.csv", "pareto.csv", "pareto.png")}
    trials = result.study.trials_dataframe()
    trials.to_csv(paths["trials.csv"], index=False)
    if result.finalists:
        paths["finalists.csv"] = out / "finalists.csv"
        rows = [
            {
                **c.row(),
                "trained_accuracy": c.trained,
                # each seed's accuracy, of which trained_accuracy is the mean
                "trained_seeds": " ".join(f"{v:.4f}" for v in c.trained_seeds),
                "origin": c.origin,
            }
            for c in result.finalists
        ]
        pd.DataFrame(rows).to_csv(paths["finalists.csv"], index=False)
    pd.DataFrame([c.row() for c in result.pareto], columns=_pareto_columns(targets)).to_csv(
        paths["pareto.csv"], index=False
    )
    pareto_plot(result, paths["pareto.png"])
    if result.best is None:
        paths.pop("best.yaml")
        return paths
    breakdowns = {t.label: t.predictor.breakdown(result.best.arch) for t in targets}
    best_record(result, targets, breakdowns, checkpoint, checkpoint_sha).write(paths["best.yaml"])
    paths["breakdown.png"] = out / "breakdown.png"
    breakdown_figure(result, targets, breakdowns).savefig(paths["breakdown.png"])
    return paths


def _pareto_columns(targets: Targets) -> list[str]:
    return ["arch", "accuracy", *(per_device("latency_ms", t.label) for t in targets), "trial"]


def best_record(
    result: SearchResult,
    targets: Targets,
    breakdowns: dict[str, pd.DataFrame],
    checkpoint: Path,
    checkpoint_hash: str,
) -> SearchRecord:
    """Everything needed to rebuild, export and trust the best arch (`breakdowns`: its per-op latency per device)."""
    best, cfg = _best(result), result.config
    space = targets.items[0].predictor.space
    return SearchRecord(
        arch=best.arch,
        accuracy=round(best.evaluated_accuracy(), 6),
        devices=[_device_record(best, t, breakdowns[t.label]) for t in targets],
        precision=targets.precision,
        rerank=_rerank_record(result, best) if cfg.rerank else None,
        finalists=_finalist_record(result, best) if result.finalists else None,
        space=SpaceInfo(name=space.name, path=space.source, fingerprint=space.fingerprint()),
        data=cfg.data,
        resolution=cfg.resolution,
        supernet=SupernetInfo(checkpoint=str(checkpoint), sha256_16=checkpoint_hash, width=result.supernet_width),
        study=StudyInfo(
            name=result.study.study_name,
            trial=best.trial,
            mode=cfg.mode,
            sampler=cfg.sampler,
            trials=len(result.candidates),
        ),
        quadnas_version=__version__,
    )


def _rerank_record(result: SearchResult, best: Candidate) -> RerankInfo:
    """How `--rerank` picked the best arch: the proxy, its score, and where supernet accuracy alone placed it."""
    by_accuracy = [c.arch for c in rank_feasible(result.ranked, result.budgets)]  # the order before re-ranking
    assert result.config.rerank is not None
    place = by_accuracy.index(best.arch) + 1
    return RerankInfo(proxy=result.config.rerank, score=best.proxy, supernet_place=place, of=len(by_accuracy))


def _finalist_record(result: SearchResult, best: Candidate) -> FinalistsInfo:
    """How the finalists picked the best arch: its short-training accuracy, where it came from, where the
    supernet placed it among the finalists, and every finalist."""
    by_supernet = sorted(result.finalists, key=lambda c: -(c.accuracy or 0.0))
    return FinalistsInfo(
        epochs=result.finalist_epochs,
        trained_accuracy=best.trained,
        origin=best.origin,
        supernet_place=[c.arch for c in by_supernet].index(best.arch) + 1,
        of=len(result.finalists),
        all=[
            Finalist(arch=c.arch, trained_accuracy=c.trained, supernet_accuracy=c.accuracy, origin=c.origin)
            for c in result.finalists
        ],
    )


def _device_record(best: Candidate, target: Target, breakdown: pd.DataFrame) -> DeviceRecord:
    """What best.yaml says of one device: the best arch's predicted latency there, its budget, the table."""
    latency, table = best.latencies[target.label], target.predictor.table
    return DeviceRecord(
        device=target.device,
        label=target.label,
        latency_ms=round(latency, 4),
        budget_ms=target.budget.ms,
        budget_share=round(target.budget.share(latency), 4),
        latency_breakdown=[OpLatency(op=str(op), ms=round(float(ms), 5)) for op, ms in zip(breakdown.op, breakdown.ms)],
        table=TableInfo(
            name=table.meta.device,
            path=str(table.path) if table.path else None,
            provenance=table.meta.provenance,
            backend=table.meta.backend,
            precision=table.meta.precision,
            method=table.meta.method,
        ),
    )


def pareto_plot(result: SearchResult, path: Path) -> None:
    """Write `pareto_figure(result)` to `path`."""
    pareto_figure(result).savefig(path)


def pareto_figure(result: SearchResult) -> Figure:
    """Accuracy vs predicted latency, one panel per device: trials within every budget and over one,
    the front, the device's budget line, the best arch.

    With one device the front is a step line; with several it is a set of points (their front is
    over accuracy and every device's latency), marked in every panel. The legend sits beside the
    axes, so it never hides a point, and lists only what is drawn.
    """
    items = [c for c in result.candidates if c.accuracy is not None]
    devices, several = result.config.devices, result.config.several
    within, over = ("within every budget", "over a budget") if several else ("within budget", "over budget")
    fig = Figure(figsize=(8.5, 4.5 * len(devices)), dpi=120, layout="constrained")
    axes = fig.subplots(len(devices), 1, squeeze=False)[:, 0]
    for i, (ax, device) in enumerate(zip(axes, devices)):
        first = i == 0  # legend entries once
        label = device.label

        def drawn(text: str, first: bool = first) -> str:
            return text if first else f"_{text}"  # matplotlib leaves out labels that start with _

        for feasible, colour, text in ((True, "tab:blue", within), (False, "tab:red", over)):
            group = [c for c in items if c.feasible(result.budgets) == feasible]
            if group:
                ax.scatter(
                    [c.latencies[label] for c in group],
                    [c.evaluated_accuracy() for c in group],
                    s=14,
                    c=colour,
                    alpha=0.6,
                    label=drawn(text),
                )
        _front(ax, result.pareto, label, several, drawn("Pareto front"))
        on = f" on {label}" if several else ""
        ax.axvline(device.budget.ms, c="tab:green", ls="--", label=f"budget {device.budget.ms:g} ms{on}")
        if result.best:
            _mark(ax, result.best, label, drawn("best"))
        ax.set_xlabel(f"predicted latency on {device.device} (ms)")
        ax.set_ylabel("validation accuracy (inherited weights)")
    axes[0].set_title(f"{result.study.study_name}: {len(result.candidates)} trials")
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def _front(ax: Axes, front: list[Candidate], label: str, several: bool, text: str) -> None:
    """The Pareto front on one device's panel: a step line for one device, ringed points for several."""
    if not front:
        return
    x, y = [c.latencies[label] for c in front], [c.evaluated_accuracy() for c in front]
    if several:
        ax.scatter(x, y, s=40, facecolors="none", edgecolors="k", lw=1, label=text)
    else:
        ax.step(x, y, where="post", c="k", lw=1, label=text)


OP_COLOURS = {
    "stem": "tab:gray",
    "quadra_block": "tab:blue",
    "downsample": "tab:orange",
    "head": "tab:purple",
    "calibration": "tab:olive",
}


def breakdown_figure(result: SearchResult, targets: Targets, breakdowns: dict[str, pd.DataFrame]) -> Figure:
    """Where the best arch spends its predicted latency: one panel per device, one bar per op it runs, in network
    order."""
    best = _best(result)
    rows = sum(len(b) for b in breakdowns.values())
    fig = Figure(figsize=(8, 0.28 * rows + 1.6 * len(targets)), dpi=120, layout="tight")
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    for ax, target in zip(axes, targets):
        breakdown, budget = breakdowns[target.label], target.budget
        kinds = [op.split()[0] for op in breakdown.op]
        y = range(len(breakdown))[::-1]
        ax.barh(list(y), breakdown.ms, color=[OP_COLOURS.get(k, "tab:gray") for k in kinds])
        ax.set_yticks(list(y), breakdown.op, fontsize=7)
        for yi, ms, share in zip(y, breakdown.ms, breakdown.share):
            ax.text(ms, yi, f" {ms:.3g} ms ({share:.0%})", va="center", fontsize=7)
        ax.set_xlim(0, breakdown.ms.max() * 1.3)
        ax.set_xlabel(f"predicted latency on {target.device} (ms)")
        latency = best.latencies[target.label]
        ax.set_title(
            f"{best.arch}\n{latency:.3g} ms of the {budget.ms:g} ms budget "
            f"({budget.share(latency):.0%}), table {target.predictor.table.meta.device}",
            fontsize=8,
        )
    return fig


def _best(result: SearchResult) -> Candidate:
    """The best candidate of a result that has one (callers check `result.best` first)."""
    assert result.best is not None
    return result.best


def _mark(ax: Axes, best: Candidate, label: str, text: str) -> None:
    ax.scatter(
        [best.latencies[label]],
        [best.evaluated_accuracy()],
        marker="*",
        s=160,
        c="gold",
        edgecolors="k",
        zorder=5,
        label=text,
    )
