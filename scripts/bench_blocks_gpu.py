"""QuadraNet vs HorNet vs ConvNeXt on a CUDA GPU, eager and `torch.compile`.

The networks of `quadnas.bench.baselines.VARIANTS` (whole networks, widths 64-128-256-512, depths
2-2-6-2), each run eager and compiled (`torch.compile`, default mode), FP32 with
PyTorch's default TF32 settings:

- batch-1 latency: one synchronous call (launch, run, synchronize), wall clock;
  interleaved rounds (variants alternate, order rotated), median and p10/p90,
  speed-up vs HorNet = median of the per-round ratios;
- training images/s at `--batch` (forward, backward, AdamW step), interleaved likewise;
- training-step memory: the peak GPU memory one step allocates above what is held
  between steps (weights, gradients, AdamW state), `torch.cuda.max_memory_allocated`;
- compile seconds: the first compiled call (inference) and step (training).

The JSON is rewritten after every section, so a run stopped early keeps what it
measured; `--deadline-min` skips the compiled sections not yet started once passed.

Usage:
    python scripts/bench_blocks_gpu.py [--resolution 224] [--batch 128] [--variants a,b]
        [--compile-variants a,b] [--out docs/figures/bench_blocks_gpu.json] [--png ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from quadnas.bench.baselines import DIMS, NUM_CLASSES, VARIANTS, count_macs  # noqa: E402
from quadnas.bench.timing import interleaved, paired_ratio, spread  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "hornet"  # every ratio is relative to it
MODES = ("eager", "compiled")
MB = 2**20


def synchronous(fn: Callable[[], object], device: torch.device) -> Callable[[], None]:
    """`fn` followed by a device synchronize, so wall time covers the GPU work."""

    def run() -> None:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def latency_runner(model: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return model(x)

    return run


def train_step(model: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One training step on labels: forward, cross-entropy, backward, optimiser step."""
    optimiser.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimiser.step()


def timed_first_call(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_memory(step: Callable[[], None], device: torch.device) -> dict[str, int]:
    """Peak bytes one (warmed-up) training step allocates above what is held between steps."""
    if device.type != "cuda":
        return {}
    torch.cuda.synchronize(device)
    held = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    peak = torch.cuda.max_memory_allocated(device)
    return {"step_bytes": peak - held, "held_bytes": held}


class Bench:
    """The measurements of one run; `save()` rewrites the JSON with what is measured so far."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.rows: dict[tuple[str, str], dict] = {}
        self.started = time.monotonic()
        self.config = {
            "command": " ".join(["python", *sys.argv]),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "resolution": args.resolution,
            "batch": args.batch,
            "dims": list(DIMS),
            "rounds": args.rounds,
            "train_rounds": args.train_rounds,
            "precision": f"fp32 (cudnn tf32 {torch.backends.cudnn.allow_tf32}, "
            f"matmul tf32 {torch.backends.cuda.matmul.allow_tf32})",
            "reference": REFERENCE,
            "compile": "torch.compile(model), default mode",
        }

    def row(self, variant: str, mode: str) -> dict:
        return self.rows.setdefault((variant, mode), {"variant": variant, "mode": mode})

    def past_deadline(self) -> bool:
        return time.monotonic() - self.started > 60 * self.args.deadline_min

    def latency(self, models: dict[str, nn.Module], mode: str) -> None:
        x = torch.randn(1, 3, self.args.resolution, self.args.resolution, device=self.device)
        runners = {}
        for v, model in models.items():
            runners[v] = synchronous(latency_runner(model, x), self.device)
            seconds = timed_first_call(runners[v])
            if mode == "compiled":
                self.row(v, mode)["compile_infer_s"] = seconds
            print(f"  {mode} batch-1 ready: {v} ({seconds:.1f} s first call)", flush=True)
        samples = interleaved(runners, self.args.rounds, min_sample_s=0.05)
        for v in models:
            median, p10, p90 = spread(samples[v])
            self.row(v, mode).update(
                {
                    "latency_ms": 1e3 * median,
                    "latency_p10_ms": 1e3 * p10,
                    "latency_p90_ms": 1e3 * p90,
                    "latency_speedup": paired_ratio(samples[REFERENCE], samples[v]),
                }
            )

    def training(self, models: dict[str, nn.Module], mode: str) -> None:
        r, b = self.args.resolution, self.args.batch
        x = torch.randn(b, 3, r, r, device=self.device)
        y = torch.randint(0, NUM_CLASSES, (b,), device=self.device)
        steps = {}
        for v, model in models.items():
            optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
            steps[v] = synchronous(lambda m=model, o=optimiser: train_step(m, o, x, y), self.device)
            seconds = timed_first_call(steps[v])
            if mode == "compiled":
                self.row(v, mode)["compile_train_s"] = seconds
            self.row(v, mode).update(step_memory(steps[v], self.device))
            print(f"  {mode} training ready: {v} ({seconds:.1f} s first step)", flush=True)
        samples = interleaved(steps, self.args.train_rounds, min_sample_s=0.2)
        for v in models:
            median, p10, p90 = spread(samples[v])
            self.row(v, mode).update(
                {
                    "train_img_s": b / median,
                    "train_p10_img_s": b / p90,
                    "train_p90_img_s": b / p10,
                    "train_ratio": paired_ratio(samples[REFERENCE], samples[v]),
                }
            )

    def frame(self) -> pd.DataFrame:
        rows = pd.DataFrame(list(self.rows.values()))
        if "step_bytes" in rows:
            ref = rows[rows.variant == REFERENCE].set_index("mode")["step_bytes"]
            rows["step_ratio"] = rows.step_bytes / rows["mode"].map(ref)
        return rows

    def save(self) -> pd.DataFrame:
        rows = self.frame()
        self.config["elapsed_s"] = round(time.monotonic() - self.started, 1)
        result = {
            "config": self.config,
            "variants": {v: VARIANTS[v].description for v in self.args.variants},
            "rows": json.loads(rows.to_json(orient="records")),
        }
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(json.dumps(result, indent=1))
        return rows


def build(variant: str, resolution: int, device: torch.device, train: bool) -> nn.Module:
    torch.manual_seed(0)
    model = VARIANTS[variant].build_net(resolution).to(device)
    return model.train(train)


def run(args: argparse.Namespace, device: torch.device) -> Bench:
    bench = Bench(args, device)
    r = args.resolution
    for v in args.variants:
        model = VARIANTS[v].build_net(r)
        bench.row(v, "eager").update(
            {"macs": count_macs(model, (1, 3, r, r)), "params": sum(p.numel() for p in model.parameters())}
        )
    inference = [v for v in args.variants if not VARIANTS[v].training_only]
    for mode in MODES:
        chosen = args.variants if mode == "eager" else args.compile_variants
        if not chosen:
            continue
        wrap = (lambda m: m) if mode == "eager" else torch.compile
        for section, names, train in (
            ("latency", [v for v in chosen if v in inference], False),
            ("training", chosen, True),
        ):
            if mode == "compiled" and bench.past_deadline():
                print(f"deadline passed: skipping compiled {section}", flush=True)
                continue
            print(f"{mode} {section}: {', '.join(names)}", flush=True)
            models = {v: wrap(build(v, r, device, train)) for v in names}
            getattr(bench, section)(models, mode)
            del models
            if device.type == "cuda":
                torch.cuda.empty_cache()
            bench.save()
    return bench


def print_summary(rows: pd.DataFrame) -> None:
    columns = [
        c
        for c in (
            "variant",
            "mode",
            "latency_ms",
            "latency_speedup",
            "train_img_s",
            "train_ratio",
            "step_bytes",
            "step_ratio",
            "compile_infer_s",
            "compile_train_s",
        )
        if c in rows
    ]
    shown = rows[columns].copy()
    if "step_bytes" in shown:
        shown["step_bytes"] = shown.step_bytes / MB
    print(shown.rename(columns={"step_bytes": "step_MB"}).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def plot(rows: pd.DataFrame, device_name: str, path: Path) -> None:
    """Speed-up, training ratio and step memory vs HorNet, eager and compiled side by side."""
    figures = [
        ("latency_speedup", "batch-1 speed (x HorNet, higher is better)"),
        ("train_ratio", "training img/s (x HorNet, higher is better)"),
        ("step_ratio", "training-step memory (x HorNet, lower is better)"),
    ]
    figures = [(c, t) for c, t in figures if c in rows]
    fig, axes = plt.subplots(1, len(figures), figsize=(5 * len(figures), 4.5), squeeze=False)
    for ax, (column, title) in zip(axes[0], figures):
        rows.pivot(index="variant", columns="mode", values=column).plot.bar(ax=ax, rot=20)
        ax.axhline(1.0, color="black", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("")
    fig.suptitle(f"whole networks on {device_name}, widths {list(DIMS)}, relative to HorNet")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device (cuda; cpu only to smoke-test the script)")
    p.add_argument("--resolution", type=int, default=224, help="input resolution (multiple of 32)")
    p.add_argument("--batch", type=int, default=128, help="training batch")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument(
        "--compile-variants",
        default="hornet,convnext,quadranet,quadranet-me",
        help="the variants also measured compiled (each compiles twice: inference and training)",
    )
    p.add_argument("--rounds", type=int, default=15, help="latency rounds")
    p.add_argument("--train-rounds", type=int, default=7, help="training rounds")
    p.add_argument(
        "--deadline-min",
        type=float,
        default=float("inf"),
        help="skip compiled sections not started after this many minutes",
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs/figures/bench_blocks_gpu.json", help="JSON results")
    p.add_argument("--png", type=Path, default=ROOT / "docs/figures/bench_blocks_gpu.png", help="bar chart")
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",")]
    args.compile_variants = [v.strip() for v in args.compile_variants.split(",") if v.strip()]
    if unknown := [v for v in args.variants + args.compile_variants if v not in VARIANTS]:
        p.error(f"unknown variant(s) {', '.join(unknown)}: choose from {', '.join(VARIANTS)}")
    if REFERENCE not in args.variants or (args.compile_variants and REFERENCE not in args.compile_variants):
        p.error(f"--variants and --compile-variants must include '{REFERENCE}' (every figure is relative to it)")
    if min(args.batch, args.rounds, args.train_rounds) < 1:
        p.error("--batch, --rounds and --train-rounds must be 1 or more")
    if missing := [v for v in args.compile_variants if v not in args.variants]:
        p.error(f"--compile-variants {', '.join(missing)} must also be in --variants")
    if args.resolution <= 0 or args.resolution % 32:
        p.error(f"--resolution {args.resolution} must be a positive multiple of 32 (e.g. 64 or 224)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f"--device {args.device} is not a torch device: use cuda (or cpu to smoke-test)", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run this on a GPU machine (or --device cpu to smoke-test)", file=sys.stderr)
        return 2
    bench = run(args, device)
    rows = bench.save()
    print_summary(rows)
    plot(rows, bench.config["device"], args.png)
    print(f"wrote {args.out} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
