"""Does QuadEnhancer pay its latency? Evidence for the `quadranet-t-qe` space.

Three parts, each writing its section of one JSON (resumable: finished trainings are kept):

* ``latency``: the enhancer's latency cost per stage, from latency tables: each enhanced row
  over the plain row of the same block (kernel, expansion), averaged over kernels. Measured host
  tables (onnxruntime, OpenVINO; profile them on quadranet-t-qe first) beside the estimated ones,
  whose enhancer rows the cost model prices without any measurement of the enhancer.
* ``accuracy``: at equal predicted latency on a device: plain archs (no block enhanced) and
  enhanced archs (every non-identity block enhanced), drawn at random from the band
  [band * budget, budget], each trained stand-alone from random init with several seeds.
* ``search``: `quadnas search` on quadranet-t-qe and on quadranet-t (the same trials, seed and
  data) under a device budget: how many blocks the qe search's best arch enhances, and both best
  archs trained stand-alone with the same seeds.

    python scripts/bench_enhancer.py latency
    python scripts/bench_enhancer.py accuracy --device vpu --budget 30 --archs 3 --seeds 0 1 2 --workers 2
    python scripts/bench_enhancer.py search --device vpu --budget 30 --seeds 0 1 2 --workers 2
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from quadnas.bench.standalone_pool import summary, train_missing
from quadnas.cli.json_output import run_json
from quadnas.latency.devices import load_device_table
from quadnas.latency.predictor import LatencyPredictor
from quadnas.space import IDENTITY, Arch, BlockChoice, SearchSpace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures" / "enhancer.json"
SPACE = "quadranet-t-qe"
TABLES = ("amd-epyc-onnxruntime-1t", "amd-epyc-openvino-1t", "cpu", "vpu", "gpu")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def train(archs: list[str], store: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    """Train every arch with every seed stand-alone (what `store` lacks), saving the JSON after each."""

    def trained(arch: str, seed: int, accuracy: float) -> None:
        save(args.out, args.result)
        print(f"  {arch} seed {seed}: {accuracy:.4f}", flush=True)

    train_missing(SPACE, archs, args.seeds, args.epochs, args.workers, store, trained)


# ---- latency -------------------------------------------------------------------
def enhancer_cost(table_name: str, space: SearchSpace) -> dict[str, Any]:
    """Per stage and expansion: mean over kernels of enhanced row / plain row - 1 (%)."""
    table = load_device_table(table_name)
    rows = table.rows[table.rows.op == "quadra_block"]
    plain = rows[rows.enhance == 0].set_index(["height", "kernel", "expansion"]).latency_ms
    enhanced = rows[rows.enhance == space.enhancer].set_index(["height", "kernel", "expansion"]).latency_ms
    ratio = (enhanced / plain).dropna()
    if ratio.empty:
        raise SystemExit(f"table {table_name} has no enhanced rows: profile it on {SPACE} first")
    by_stage = (100 * (ratio - 1)).groupby(level=["height", "expansion"]).mean()
    stage = {h: i for i, h in enumerate(sorted({int(h) for h in by_stage.index.get_level_values(0)}, reverse=True))}
    return {
        "provenance": table.meta.provenance,
        "backend": f"{table.meta.backend} {table.meta.backend_version}",
        "threads": table.meta.threads,
        "host": table.meta.host.model_dump() if table.meta.host else None,
        "overhead_pct": {f"stage {stage[int(h)] + 1} e{e}": round(float(v), 1) for (h, e), v in by_stage.items()},
    }


def run_latency(args: argparse.Namespace, result: dict[str, Any]) -> None:
    space = SearchSpace.load(SPACE)
    result["latency"] = {name: enhancer_cost(name, space) for name in args.tables}
    frame = pd.DataFrame({name: r["overhead_pct"] for name, r in result["latency"].items()})
    print("enhancer latency cost (% over the plain block, mean over kernels):")
    print(frame.to_markdown())


# ---- accuracy at equal latency ---------------------------------------------------
def banded_pairs(predictor: LatencyPredictor, budget: float, band: float, n: int, seed: int) -> list[tuple[Arch, Arch]]:
    """`n` (plain, enhanced) arch pairs, each arch's predicted latency in [band * budget, budget].

    A random arch (random identity share) gives the plain arch; the enhanced one is drawn the same
    way independently, with every non-identity block enhanced.
    """
    space, rng = predictor.space, random.Random(seed)
    plain_choices = [c for c in space.choices if not c.is_identity and not c.enhanced]

    def draw(enhanced: bool) -> Arch:
        for _ in range(100_000):
            p_id = rng.uniform(0.0, 0.9)
            blocks = tuple(
                IDENTITY if rng.random() < p_id else BlockChoice(c.kernel, c.expansion, enhanced)
                for c in (rng.choice(plain_choices) for _ in range(space.num_blocks))
            )
            arch = Arch(blocks)
            if band * budget <= predictor.predict(arch) <= budget:
                return arch
        raise SystemExit(f"no {'enhanced' if enhanced else 'plain'} arch in the band: widen --band")

    return [(draw(False), draw(True)) for _ in range(n)]


def run_accuracy(args: argparse.Namespace, result: dict[str, Any]) -> None:
    space = SearchSpace.load(SPACE)
    predictor = LatencyPredictor(load_device_table(args.device), space)
    key = f"{args.device} {args.budget:g} ms"
    section = result.setdefault("accuracy", {}).setdefault(key, {})
    if "pairs" not in section:
        pairs = banded_pairs(predictor, args.budget, args.band, args.archs, args.seed)
        section["pairs"] = [[str(p), str(e)] for p, e in pairs]
        section["band"] = [args.band * args.budget, args.budget]
    section["epochs"] = args.epochs
    store = section.setdefault("standalone", {})
    plain = [p for p, _ in section["pairs"]]
    enhanced = [e for _, e in section["pairs"]]
    train(plain + enhanced, store, args)
    section["latency_ms"] = {a: round(predictor.predict(space.parse(a)), 2) for a in plain + enhanced}
    section["plain"], section["enhanced"] = summary(store, plain), summary(store, enhanced)
    save(args.out, result)
    print(f"{key}: plain {section['plain']}\n{' ' * len(key)}  enhanced {section['enhanced']}")


# ---- search ----------------------------------------------------------------------
def searched_arch(space: str, args: argparse.Namespace) -> dict[str, Any]:
    """Best arch of `quadnas search` on `space` (its --json document)."""
    best = run_json(
        "search", "--space", space, "--device", args.device, "--budget", f"{args.budget:g}ms",
        "--trials", str(args.trials), "--seed", str(args.seed), cwd=ROOT,
    )["best"]  # fmt: skip
    return {"arch": best["arch"], "supernet_accuracy": best["accuracy"]}


def run_search(args: argparse.Namespace, result: dict[str, Any]) -> None:
    key = f"{args.device} {args.budget:g} ms, {args.trials} trials, seed {args.seed}"
    section = result.setdefault("search", {}).setdefault(key, {})
    for space in (SPACE, "quadranet-t"):
        if space not in section:
            section[space] = searched_arch(space, args)
            save(args.out, result)
    qe = SearchSpace.load(SPACE)
    best = qe.parse(section[SPACE]["arch"])
    section["enhanced_blocks"] = sum(b.enhanced for b in best.blocks)
    section["active_blocks"] = sum(not b.is_identity for b in best.blocks)
    archs = [section[SPACE]["arch"], section["quadranet-t"]["arch"]]
    store = section.setdefault("standalone", {})
    train(archs, store, args)
    for space, arch in zip((SPACE, "quadranet-t"), archs):
        section[space]["standalone"] = summary(store, [arch])
    save(args.out, result)
    print(json.dumps(section, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("latency", "accuracy", "search"))
    parser.add_argument("--tables", nargs="+", default=list(TABLES), help="latency: tables to compare")
    parser.add_argument("--device", default="vpu", help="accuracy, search: the latency table")
    parser.add_argument("--budget", type=float, default=30.0, help="accuracy, search: budget in ms")
    parser.add_argument("--band", type=float, default=0.85, help="accuracy: archs within [band * budget, budget]")
    parser.add_argument("--archs", type=int, default=3, help="accuracy: archs per group")
    parser.add_argument("--trials", type=int, default=100, help="search: trials per search")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="stand-alone training seeds")
    parser.add_argument("--epochs", type=float, default=4.0, help="stand-alone epochs")
    parser.add_argument("--seed", type=int, default=0, help="arch draws and search seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    args.result = result = load(args.out)
    {"latency": run_latency, "accuracy": run_accuracy, "search": run_search}[args.part](args, result)
    save(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
