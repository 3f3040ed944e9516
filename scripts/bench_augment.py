"""Stand-alone accuracy with and without augmentation, on mnist5k-clutter and on a CIFAR-format set; one JSON.

The CIFAR-format set is made here from the bundled mnist5k: every digit drawn in a random
foreground colour on a random background colour (seeded), written as CIFAR-10 python batches
(4 training batches of 1,000 images, a `test_batch` of 1,000 and `batches.meta`), so reading it
goes through the CIFAR reader and its test batch is the validation part. One arch (README's
first search's best, at a quarter of the space's width) is trained stand-alone from random init
with the package's recipe for `--epochs` epochs, once per augmentation (`none`, `crop`,
`crop-flip`) and seed; digits are no mirror images of each other, so `crop-flip` is expected
to cost accuracy there.

    python scripts/bench_augment.py     # writes docs/figures/bench_augment.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

from quadnas.data import load_dataset
from quadnas.resources import shipped_dir
from quadnas.space import SearchSpace
from quadnas.supernet.standalone import standalone_accuracy
from quadnas.supernet.train import TrainConfig, steps_for

ARCH = "id-id-id-id-id-id-k5e4-k3e4-id-id-id-id-id-id-k3e2-k3e2-k3e2-k3e4"
AUGMENTS = ("none", "crop", "crop-flip")


def write_coloured_cifar(folder: Path, seed: int = 0) -> Path:
    """mnist5k shuffled (seeded), as 32 x 32 colour CIFAR-10 batches: 4,000 training images, 1,000 in the test batch."""
    with np.load(shipped_dir("datasets") / "mnist5k.npz") as arrays:
        digits, labels = arrays["x"], arrays["y"].astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))  # the file is sorted by label
    digits, labels = digits[order], labels[order]
    ink = digits.astype(np.float32)[:, None] / 255  # N,1,28,28
    fore, back = rng.integers(0, 256, (2, len(digits), 3, 1, 1)).astype(np.float32)
    images = np.zeros((len(digits), 3, 32, 32), dtype=np.float32)
    images[:] = back
    images[:, :, 2:30, 2:30] = ink * fore + (1 - ink) * back
    rows = images.round().astype(np.uint8).reshape(len(digits), -1)
    folder.mkdir(parents=True)
    for b in range(4):
        part = slice(1000 * b, 1000 * (b + 1))
        batch = {b"data": rows[part], b"labels": labels[part].tolist()}
        (folder / f"data_batch_{b + 1}").write_bytes(pickle.dumps(batch))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": rows[4000:], b"labels": labels[4000:].tolist()}))
    names = {b"label_names": [str(d).encode() for d in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(names))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=12)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--out", default="docs/figures/bench_augment.json")
    args = parser.parse_args()
    space = SearchSpace.load("quadranet-t").scaled(args.width)
    result: dict = {
        "arch": ARCH,
        "width": args.width,
        "epochs": args.epochs,
        "load_average_at_start": list(os.getloadavg()),
        "accuracy": {},
    }
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        sources = {
            "mnist5k-clutter": "mnist5k-clutter",
            "coloured-mnist5k-cifar": str(write_coloured_cifar(Path(tmp) / "cifar")),
        }
        for name, source in sources.items():
            data = load_dataset(source, 32)
            result.setdefault("sets", {})[name] = {"train_images": len(data.train), "val_images": len(data.val)}
            for augment in AUGMENTS:
                for seed in args.seeds:
                    config = TrainConfig(seed=seed, memory_efficient=False, augment=augment)
                    steps = steps_for(args.epochs, len(data.train), config.batch_size)
                    accuracy = standalone_accuracy(space, space.parse(ARCH), data, config, steps, 0.1)
                    result["accuracy"].setdefault(name, {}).setdefault(augment, {})[str(seed)] = round(accuracy, 4)
                    print(name, augment, seed, round(accuracy, 4), flush=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(result, indent=2) + "\n")
    result["load_average_at_end"] = list(os.getloadavg())
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
