"""The streaming data layer against the old in-memory one: memory, fingerprinting, loader speed; one JSON file.

On generated image folders (10 classes of noisy 64 px JPEGs; 2,000 and 20,000 images):

- the peak memory of `quadnas train` with its loader workers (the summed PSS of the process tree,
  polled every 0.1 s: RSS would count the pages forked workers share once per worker), stopped by
  SIGTERM `--train-seconds` after training started; beside it the same command
  run on the old in-memory data layer (`--old-tree`, a checkout of the previous `quadnas/`,
  which decodes every image to float32 before training and is killed the same way);
- the seconds to fingerprint each folder and the number of images that opened (none);
- side by side in one process: the images per second the training loader delivers (2 workers,
  augmented 64 px views, batch 64) and the images per second one training step of the full-width
  supernet consumes on the same batches.

    python scripts/bench_data.py --old-tree /tmp/main-checkout   # docs/figures/bench_data.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from PIL import Image

from quadnas.data import load_dataset
from quadnas.data.load import manifest_fingerprint
from quadnas.data.loader import EpochSampler, epoch_batches
from quadnas.data.readers import read
from quadnas.latency.host import Host
from quadnas.space import SearchSpace
from quadnas.supernet.train import SupernetTrainer, TrainConfig

RESOLUTION = 64


def write_folder(root: Path, n: int, seed: int = 0) -> Path:
    """`n` noisy 64 x 64 JPEGs in 10 class folders; class c's images are brighter in a band of rows."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        c = i % 10
        pixels = rng.integers(0, 160, (RESOLUTION, RESOLUTION, 3), dtype=np.uint8)
        pixels[6 * c : 6 * c + 6] += 90
        folder = root / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)
    return root


def fingerprint_seconds(folder: Path) -> dict:
    """Seconds to list and fingerprint `folder`, and how many images opened meanwhile."""
    opened = []
    original = Image.open

    def counting(*args, **kwargs):
        opened.append(1)
        return original(*args, **kwargs)

    Image.open = counting
    try:
        began = time.perf_counter()
        manifest_fingerprint(read(str(folder)), RESOLUTION, 0.2, 0, 3)
        return {"seconds": round(time.perf_counter() - began, 3), "images_opened": len(opened)}
    finally:
        Image.open = original


def tree_memory(process: psutil.Process) -> int:
    """Bytes of the process and its children: their summed PSS (shared pages split among the processes
    sharing them, so forked loader workers are not counted twice)."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def peak_memory_of_train(
    folder: Path, out: Path, train_seconds: float, python_path: str | None, limit_s: float
) -> dict:
    """Peak RSS (MB) of `quadnas train` on `folder` with its children, stopped `train_seconds` after its first step."""
    command = [
        sys.executable, "-m", "quadnas", "train", "--space", "tiny", "--data", str(folder),
        "--resolution", str(RESOLUTION), "--epochs", "1", "--batch-size", "64", "--out", str(out),
    ]  # fmt: skip
    if python_path is None:
        command += ["--workers", "2"]
    # plain convs in both trees: the old tree would rebuild the fused op from its own source path in
    # the shared extension folder, and a run stopped during that build leaves its lock behind
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "QUADNAS_FUSED": "0"}
    if python_path is not None:
        env["PYTHONPATH"] = python_path
    log = out.with_suffix(".log")
    began = time.perf_counter()
    with log.open("w") as sink:
        # run outside the checkout: `python -m` puts the working folder first on sys.path, before PYTHONPATH
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=out.parent)
        process, peak, training_at, stopped_at = psutil.Process(child.pid), 0, None, None
        while child.poll() is None:
            peak = max(peak, tree_memory(process))
            now = time.perf_counter() - began
            if training_at is None and "training supernet" in log.read_text():
                training_at = now
            if stopped_at is None and (
                (training_at is not None and now - training_at > train_seconds) or now > limit_s
            ):
                child.send_signal(signal.SIGTERM)  # the streaming layer writes a checkpoint and exits
                stopped_at = now
            if stopped_at is not None and now - stopped_at > 300:
                child.kill()
                break
            time.sleep(0.1)
    return {
        "peak_pss_mb": round(peak / 2**20, 1),
        "seconds_to_training": None if training_at is None else round(training_at, 1),
        "sigterm_at_s": None if stopped_at is None else round(stopped_at, 1),
        "exited_after_s": round(time.perf_counter() - began, 1),
        "exit_code": child.returncode,
    }


def loader_vs_step(folder: Path, batches: int) -> dict:
    """Images/s of the loader (2 workers) and of the full-width supernet's training steps on the same batches."""
    torch.set_num_threads(1)
    data = load_dataset(str(folder), RESOLUTION)
    split = data.train.with_view(augment="crop-flip", seed=0)
    sampler = EpochSampler(len(split), seed=0)
    got = []
    stream = epoch_batches(split, sampler, 64, workers=2, device=torch.device("cpu"))
    got.append(next(stream))  # workers started
    batches = min(batches, len(split) // 64 - 1)
    began = time.perf_counter()
    for _ in range(batches):
        got.append(next(stream))
    loader_s = time.perf_counter() - began
    del stream
    results = {"loader_images_per_s": round(batches * 64 / loader_s, 1)}
    for space_name in ("quadranet-t", "tiny"):
        space = SearchSpace.load(space_name)
        config = TrainConfig(resolution=RESOLUTION, memory_efficient=False)
        trainer = SupernetTrainer(space, data.num_classes, config, steps_per_epoch=len(got))
        trainer.step(*got[0], 64)
        steps = min(len(got) - 1, 5)
        began = time.perf_counter()
        for x, y in got[1 : 1 + steps]:
            trainer.step(x, y, 64)
        results[f"step_images_per_s_{space_name}"] = round(steps * 64 / (time.perf_counter() - began), 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--old-tree", help="a folder holding the previous quadnas/ (e.g. `git archive` of main)")
    parser.add_argument("--train-seconds", type=float, default=20.0)
    parser.add_argument("--limit-seconds", type=float, default=400.0, help="kill a run that never starts training")
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("--out", default="docs/figures/bench_data.json")
    args = parser.parse_args()
    result: dict = {"load_average_at_start": list(os.getloadavg()), "host": Host.current().model_dump(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            folder = write_folder(Path(tmp) / f"images{n}", n)
            entry: dict = {"fingerprint": fingerprint_seconds(folder)}
            entry["train_streaming"] = peak_memory_of_train(
                folder, Path(tmp) / f"new{n}.pt", args.train_seconds, None, args.limit_seconds
            )
            if args.old_tree:
                entry["train_old_in_memory"] = peak_memory_of_train(
                    folder, Path(tmp) / f"old{n}.pt", args.train_seconds, args.old_tree, args.limit_seconds
                )
            result["sizes"][str(n)] = entry
            print(n, json.dumps(entry), flush=True)
        result["loader_vs_step"] = loader_vs_step(Path(tmp) / f"images{args.sizes[0]}", args.loader_batches)
    result["load_average_at_end"] = list(os.getloadavg())
    new = [result["sizes"][str(n)]["train_streaming"]["peak_pss_mb"] for n in args.sizes]
    result["streaming_peak_difference_mb"] = round(max(new) - min(new), 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["loader_vs_step"]), result["streaming_peak_difference_mb"])


if __name__ == "__main__":
    main()
