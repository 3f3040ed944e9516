"""QuadraNet vs HorNet (gnConv) vs ConvNeXt at equal width, plus an equal-cost QuadraNet.

Every QuadraNet variant runs with the fused quadratic depthwise conv (`quadnas.nn.fused`)
and, unless --no-plain, again as `<variant>+plain` with the three plain convs
(`QUADNAS_FUSED=0` around its forward), side by side in the same run.

Every variant of `quadnas.bench.baselines.VARIANTS` is measured as a whole network and as one
block at each stage's shape (56x56x64, 28x28x128, 14x14x256, 7x7x512 at 224):

- batch-1 latency: eager torch with 1 and 2 threads, onnxruntime with 1 thread;
  interleaved rounds (variants alternate round by round, order rotated), median
  and p10/p90 of the rounds, speed-up vs HorNet = median of the per-round ratios;
- training images/s at batch 32 (forward + backward + AdamW step), interleaved;
- bytes saved for backward by one training forward (saved-tensor hooks, summed
  over distinct storages);
- peak RSS of one training step in a fresh process (ru_maxrss) and that peak
  minus the RSS after building model, optimiser and batch.

Usage:
    python scripts/bench_blocks.py [--quick] [--resolution 224] [--variants a,b]
        [--no-plain] [--out docs/figures/bench_blocks.json] [--png docs/figures/bench_blocks.png]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch import nn  # noqa: E402

from quadnas.bench.baselines import DIMS, VARIANTS, count_macs, fused_op, stage_shape  # noqa: E402
from quadnas.bench.timing import interleaved, paired_ratio, spread  # noqa: E402
from quadnas.nn import fused  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "hornet"
LATENCY_REFERENCE = "convnext"  # the goal: QuadraNet's batch-1 latency within 1.15x of ConvNeXt's
PLAIN = "+plain"  # a QuadraNet variant with the fused op turned off
UNITS = ("net", "stage1", "stage2", "stage3", "stage4")
BACKENDS = {"torch-1t": ("torch", 1), "torch-2t": ("torch", 2), "ort-1t": ("onnxruntime", 1)}  # runtime, threads
MB = 2**20
console = Console(width=max(Console().width, 180))


# ---- building ----------------------------------------------------------------
class Plain(nn.Module):
    """Runs `module` with the fused op off. A training step must keep it off through backward too
    (`train_step` does): checkpointed branches recompute their forward there."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with fused_op(False):
            return self.module(x)


def base(variant: str) -> str:
    """The `quadnas.bench.baselines.VARIANTS` name of a variant (`quadranet+plain` -> `quadranet`)."""
    return variant.removesuffix(PLAIN)


def build(variant: str, unit: str, resolution: int) -> nn.Module:
    v = VARIANTS[base(variant)]
    torch.manual_seed(0)
    model = v.build_net(resolution) if unit == "net" else v.build_block(UNITS.index(unit) - 1)
    return Plain(model) if variant.endswith(PLAIN) else model


def input_shape(unit: str, resolution: int, batch: int) -> tuple[int, int, int, int]:
    if unit == "net":
        return (batch, 3, resolution, resolution)
    return (batch, *stage_shape(UNITS.index(unit) - 1, resolution)[1:])


def shape_text(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}x{shape[1]}"


# ---- latency -----------------------------------------------------------------
def torch_runner(model: nn.Module, shape: tuple[int, ...]) -> Callable[[], object]:
    model.eval()
    x = torch.randn(shape)

    def run():
        with torch.inference_mode():
            return model(x)

    return run


def ort_runner(model: nn.Module, shape: tuple[int, ...], threads: int) -> Callable[[], object]:
    """An onnxruntime session of `model`, exported with the TorchScript exporter (fast, and
    enough for these plain conv/norm/elementwise graphs)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.randn(shape),), buffer, dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.randn(*shape).astype(np.float32)}
    return lambda: session.run(None, feed)


# ---- training ----------------------------------------------------------------
def training_batch(unit: str, resolution: int, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random images and labels for a network; a grad-requiring input for a block
    (as inside a network, so checkpointed branches are really checkpointed)."""
    x = torch.randn(input_shape(unit, resolution, batch))
    if unit == "net":
        return x, torch.randint(0, 1000, (batch,))
    return x.requires_grad_(), None


def train_step(
    model: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor | None
) -> None:
    optimiser.zero_grad(set_to_none=True)
    x.grad = None
    with fused_op(False) if isinstance(model, Plain) else nullcontext():
        out = model(x)
        loss = F.cross_entropy(out, target) if target is not None else out.square().mean()
        loss.backward()
    optimiser.step()


def training_samples(
    models: dict[str, nn.Module], unit: str, resolution: int, batch: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per training step of each model, interleaved (after one warm-up step each)."""
    x, target = training_batch(unit, resolution, batch)
    runners = {}
    for name, model in models.items():
        optimiser = torch.optim.AdamW(model.train().parameters(), lr=1e-4)
        runners[name] = lambda m=model, o=optimiser: train_step(m, o, x, target)
    return interleaved(runners, rounds, min_sample_s=0.0)


def saved_bytes(model: nn.Module, unit: str, resolution: int, batch: int) -> int:
    """Bytes of the distinct storages one training forward saves for backward."""
    x, _ = training_batch(unit, resolution, batch)
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.train()(x)
    return sum(storages.values())


def proc_status_bytes(key: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {key} in /proc/self/status: peak-RSS measurement needs Linux")


def rss_child(variant: str, unit: str, resolution: int, batch: int, threads: int) -> dict[str, int]:
    """In this (fresh) process: build, then one training step; peak and baseline RSS.

    The peak is VmHWM, the high-water mark of this process's own address space:
    `ru_maxrss` would do, but on Linux it keeps the parent's RSS across fork + exec.
    """
    torch.set_num_threads(threads)
    model = build(variant, unit, resolution).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, target = training_batch(unit, resolution, batch)
    base = proc_status_bytes("VmRSS")
    train_step(model, optimiser, x, target)
    peak = proc_status_bytes("VmHWM")
    return {"rss_peak_bytes": peak, "rss_base_bytes": base, "rss_step_bytes": peak - base}


def peak_rss(variant: str, unit: str, resolution: int, batch: int, threads: int) -> dict[str, int]:
    """`rss_child` in a fresh Python process."""
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        unit,
        "--resolution",
        str(resolution),
        "--batch",
        str(batch),
        "--train-threads",
        str(threads),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"peak-RSS child for {variant}/{unit} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- one unit, all variants --------------------------------------------------
def measure_unit(unit: str, variants: list[str], args: argparse.Namespace) -> list[dict]:
    models = {v: build(v, unit, args.resolution) for v in variants}
    one = input_shape(unit, args.resolution, 1)
    rows = {
        v: {
            "variant": v,
            "unit": unit,
            "shape": shape_text(one),
            "macs": count_macs(m, one),
            "params": sum(p.numel() for p in m.parameters()),
        }
        for v, m in models.items()
    }

    inference = [v for v in variants if not VARIANTS[base(v)].training_only]
    for backend, (runtime, threads) in BACKENDS.items():
        console.log(f"{unit}: batch-1 latency, {backend}")
        if runtime == "torch":
            torch.set_num_threads(threads)
            runners = {v: torch_runner(models[v], one) for v in inference}
        else:
            runners = {v: ort_runner(models[v], one, threads) for v in inference}
        samples = interleaved(runners, args.rounds, args.min_sample_s)
        for v in inference:
            median, p10, p90 = spread(samples[v])
            rows[v].update(
                {
                    f"{backend}_ms": 1e3 * median,
                    f"{backend}_p10_ms": 1e3 * p10,
                    f"{backend}_p90_ms": 1e3 * p90,
                    f"{backend}_speedup": paired_ratio(samples[REFERENCE], samples[v]),
                    f"{backend}_vs_{LATENCY_REFERENCE}": (
                        paired_ratio(samples[v], samples[LATENCY_REFERENCE]) if LATENCY_REFERENCE in samples else None
                    ),
                }
            )

    torch.set_num_threads(args.train_threads)
    console.log(f"{unit}: training throughput, batch {args.batch}")
    samples = training_samples(models, unit, args.resolution, args.batch, args.train_rounds)
    for v in variants:
        median, p10, p90 = spread(samples[v])
        rows[v].update(
            {
                "train_img_s": args.batch / median,
                "train_p10_img_s": args.batch / p90,
                "train_p90_img_s": args.batch / p10,
                "train_ratio": paired_ratio(samples[REFERENCE], samples[v]),
            }
        )

    console.log(f"{unit}: saved tensors and peak RSS (fresh processes)")
    for v in variants:
        rows[v]["saved_bytes"] = saved_bytes(models[v], unit, args.resolution, args.batch)
        rows[v].update(peak_rss(v, unit, args.resolution, args.batch, args.train_threads))
    ref = rows[REFERENCE]
    for row in rows.values():
        for key in ("saved", "rss_step", "rss_peak"):
            row[f"{key}_ratio"] = row[f"{key}_bytes"] / ref[f"{key}_bytes"]
    return list(rows.values())


# ---- reporting ---------------------------------------------------------------
def goal(rows: pd.DataFrame) -> list[dict]:
    """Issue 17's goals at network level: training >= 1.5x HorNet's images/s at step memory <= 0.5x
    HorNet's, and batch-1 latency (torch, 1 thread) <= 1.15x ConvNeXt's where the variant runs inference."""
    net = rows[rows.unit == "net"].set_index("variant")
    latency_column = f"torch-1t_vs_{LATENCY_REFERENCE}"
    out = []
    for v in net.index:
        if not v.startswith("quadranet"):
            continue
        latency = net.at[v, latency_column] if latency_column in net.columns else None
        latency = None if latency is None or pd.isna(latency) else float(latency)
        training_met = bool(net.at[v, "rss_step_ratio"] <= 0.5 and net.at[v, "train_ratio"] >= 1.5)
        out.append(
            {
                "variant": v,
                "rss_step_ratio": net.at[v, "rss_step_ratio"],
                "rss_peak_ratio": net.at[v, "rss_peak_ratio"],
                "saved_ratio": net.at[v, "saved_ratio"],
                "train_ratio": net.at[v, "train_ratio"],
                "latency_vs_convnext": latency,
                "training_met": training_met,
                "latency_met": None if latency is None else latency <= 1.15,
            }
        )
    return out


def print_table(rows: pd.DataFrame) -> None:
    table = Table(title="QuadraNet vs HorNet vs ConvNeXt (x = relative to HorNet)")
    for column in ("unit", "variant", "GMACs", "Mparams", *BACKENDS, "train img/s", "saved MB", "step MB", "peak MB"):
        table.add_column(column, justify="left" if column in ("unit", "variant") else "right")

    def cell(row, value: str, ratio: str) -> str:
        if pd.isna(row.get(value)):
            return "-"
        number = f"{row[value]:.0f}" if row[value] >= 100 else f"{row[value]:.3g}"
        return f"{number} ({row[ratio]:.2f}x)"

    for i, unit in enumerate(UNITS):
        part = rows[rows.unit == unit]
        if i:
            table.add_section()
        for _, row in part.iterrows():
            table.add_row(
                f"{unit} {row['shape']}",
                row["variant"],
                f"{row['macs'] / 1e9:.3f}",
                f"{row['params'] / 1e6:.2f}",
                *(cell(row, f"{b}_ms", f"{b}_speedup") for b in BACKENDS),
                cell(row, "train_img_s", "train_ratio"),
                f"{row['saved_bytes'] / MB:.0f} ({row['saved_ratio']:.2f}x)",
                f"{row['rss_step_bytes'] / MB:.0f} ({row['rss_step_ratio']:.2f}x)",
                f"{row['rss_peak_bytes'] / MB:.0f}",
            )
    console.print(table)
    console.print(
        "latency: ms (speed-up vs HorNet); train: images/s (ratio); memory: MB (ratio); "
        "step MB = peak RSS of one training step minus RSS after build"
    )


def plot(rows: pd.DataFrame, unit: str, path: Path) -> None:
    """Grouped bars of the main figures of `unit` (normally the whole network), HorNet = 1."""
    part = rows[rows.unit == unit].set_index("variant")
    speed = pd.DataFrame(
        {f"{b} speed": part[f"{b}_speedup"] for b in BACKENDS} | {"training img/s": part["train_ratio"]}
    )
    memory = pd.DataFrame(
        {
            "saved for backward": part["saved_ratio"],
            "training step RSS": part["rss_step_ratio"],
            "peak RSS": part["rss_peak_ratio"],
        }
    )
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [4, 3]})
    for ax, frame, title in (
        (axes[0], speed, "speed (x HorNet, higher is better)"),
        (axes[1], memory, "training memory (x HorNet, lower is better)"),
    ):
        frame.T.plot.bar(ax=ax, rot=0, width=0.8, legend=False)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_title(title)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(part), frameon=False)
    what = "networks" if unit == "net" else f"{unit} blocks"
    fig.suptitle(f"{what}, input {part['shape'].iloc[0]}, widths {list(DIMS)}: relative to HorNet")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write `fig` as a 120-dpi PNG (creating the folder) and free it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- command line ------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="few rounds (smoke test)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution (multiple of 32)")
    p.add_argument("--batch", type=int, default=32, help="training batch")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads for training")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument(
        "--no-plain", action="store_true", help=f"skip the '<quadranet variant>{PLAIN}' twins without the fused op"
    )
    p.add_argument("--units", default=",".join(UNITS), help=f"comma-separated subset of {', '.join(UNITS)}")
    p.add_argument("--rounds", type=int, help="latency rounds (default 15, quick 3)")
    p.add_argument("--train-rounds", type=int, help="timed training steps per variant (default 5, quick 1)")
    p.add_argument("--out", type=Path, default=ROOT / "docs/figures/bench_blocks.json", help="JSON results")
    p.add_argument(
        "--png",
        type=Path,
        default=ROOT / "docs/figures/bench_blocks.png",
        help="bar chart of the first unit's figures (default unit order: the network first)",
    )
    p.add_argument("--child", nargs=2, metavar=("VARIANT", "UNIT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 15)
    args.train_rounds = args.train_rounds or (1 if args.quick else 5)
    args.min_sample_s = 0.0 if args.quick else 0.05
    args.variants = [v.strip() for v in args.variants.split(",")]
    args.units = [u.strip() for u in args.units.split(",")]
    if args.resolution <= 0 or args.resolution % 32:
        p.error(f"--resolution {args.resolution} must be a positive multiple of 32 (e.g. 64 or 224)")
    if unknown := [v for v in args.variants if base(v) not in VARIANTS]:
        p.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    if not args.no_plain:
        args.variants += [v + PLAIN for v in args.variants if v.startswith("quadranet")]
    if REFERENCE not in args.variants:
        p.error(f"--variants must include '{REFERENCE}' (every figure is relative to it)")
    if unknown := [u for u in args.units if u not in UNITS]:
        p.error(f"unknown unit(s) {', '.join(unknown)}: choose from {', '.join(UNITS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(rss_child(*args.child, args.resolution, args.batch, args.train_threads)))
        return 0
    # built (or loaded) before any timing
    console.log(f"fused quadratic depthwise conv: {'on' if fused.is_available() else 'off (plain convs)'}")
    started, load_before = datetime.now(timezone.utc), os.getloadavg()
    torch.set_num_threads(args.train_threads)  # building; each measurement sets its own threads
    records = [row for unit in args.units for row in measure_unit(unit, args.variants, args)]
    rows = pd.DataFrame(records)
    result = {
        "config": {
            "command": " ".join(["python", *sys.argv]),
            "created": started.isoformat(timespec="seconds"),
            "quick": args.quick,
            "resolution": args.resolution,
            "batch": args.batch,
            "dims": list(DIMS),
            "latency_rounds": args.rounds,
            "min_sample_s": args.min_sample_s,
            "train_rounds": args.train_rounds,
            "train_threads": args.train_threads,
            "reference": REFERENCE,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "macs": "convolutions and matmuls (torch.utils.flop_counter FLOPs / 2), batch 1",
            "fused_available": fused.is_available(),
        },
        "variants": {
            v: VARIANTS[base(v)].description + (" (three plain convs, fused op off)" if v.endswith(PLAIN) else "")
            for v in args.variants
        },
        "goal": goal(rows) if "net" in args.units else [],
        "rows": json.loads(rows.to_json(orient="records")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_table(rows)
    for g in result["goal"]:
        latency = g["latency_vs_convnext"]
        latency_text = (
            ""
            if latency is None
            else f"; batch-1 latency {latency:.2f}x ConvNeXt's (<= 1.15) -> {'met' if g['latency_met'] else 'not met'}"
        )
        console.print(
            f"goal {g['variant']}: step RSS {g['rss_step_ratio']:.2f}x HorNet's (<= 0.5), training "
            f"{g['train_ratio']:.2f}x (>= 1.5) -> {'met' if g['training_met'] else 'not met'}{latency_text}"
        )
    plot(rows, args.units[0], args.png)
    console.print(f"wrote {args.out} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
