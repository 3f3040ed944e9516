"""`load_dataset`: a source -> a `Dataset` of lazily decoded train and validation splits.

The validation part is the source's own (a CIFAR test batch, an image folder's `val/`) or a
stratified, seeded `val_fraction` of the pool. `val_images` keeps a fixed, seeded,
class-stratified subset of it (what searches and per-epoch checks score). Normalisation comes
from a seeded sample of the training split; the fingerprint from the source's manifest (file
names, sizes, mtimes: no image is opened) and the settings that change what training sees.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from quadnas.data.readers import Collection, read
from quadnas.data.split import Split
from quadnas.data.transforms import Augment
from quadnas.errors import QuadnasError
from quadnas.progress import Progress, Silent

LAYOUT = 2  # bump when the same files would give other training inputs (transforms, splitting)
NORM_SAMPLE = 2000  # training images the per-channel mean and std are measured on


@dataclass(frozen=True)
class Dataset:
    """A labelled image set: lazily decoded, normalised train and validation splits."""

    name: str
    source: str
    classes: tuple[str, ...]
    train: Split  # or any map-style dataset of (x, y) with the same view, e.g. a TensorDataset in tests
    val: Split
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fingerprint: str  # 16 hex chars: manifest, classes, resolution, split settings, channels
    mirror_invariant: bool = True  # whether flipping left-right keeps the class (not for digits)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def augment(self, setting: str = "auto") -> Augment:
        """The augmentation a training `setting` means on this data: "auto" is pad-and-crop (or
        random-resized crop), with a mirror where the data allow it; any other setting is itself."""
        if setting == "auto":
            return "crop-flip" if self.mirror_invariant else "crop"
        return cast(Augment, setting)


def load_dataset(
    source: str,
    resolution: int = 32,
    val_fraction: float = 0.2,
    seed: int = 0,
    channels: int = 3,
    progress: Progress | None = None,
    val_images: int | None = None,
) -> Dataset:
    """Open `source` lazily at `resolution` with `channels`; see the module doc for the parts."""
    _check_arguments(resolution, val_fraction, channels)
    collection = read(source)
    if collection.val is None:
        _check_class_sizes(collection, val_fraction)
        from sklearn.model_selection import train_test_split  # imported on use: it slows every CLI start

        train_idx, val_idx = train_test_split(
            np.arange(len(collection.pool)), test_size=val_fraction, random_state=seed, stratify=collection.pool.labels
        )
        train = Split(collection.pool, np.sort(train_idx), resolution, channels)
        val = Split(collection.pool, np.sort(val_idx), resolution, channels)
    else:
        train = Split(collection.pool, np.arange(len(collection.pool)), resolution, channels)
        val = Split(collection.val, np.arange(len(collection.val)), resolution, channels)
    if val_images is not None:
        val = val.subset(stratified_subset(val.labels.numpy(), val_images, seed, collection.name))
    mean, std = _normalisation(train, seed, progress)
    return Dataset(
        name=collection.name,
        source=source,
        classes=collection.classes,
        train=train.with_view(mean=mean, std=std),
        val=val.with_view(mean=mean, std=std),
        resolution=resolution,
        mean=mean,
        std=std,
        fingerprint=manifest_fingerprint(collection, resolution, val_fraction, seed, channels),
        mirror_invariant=collection.mirror_invariant,
    )


def stratified_subset(labels: np.ndarray, n: int, seed: int, name: str) -> np.ndarray:
    """`n` positions of `labels`, each class in proportion (largest remainders), drawn with `seed`; sorted."""
    if not 0 < n <= len(labels):
        raise QuadnasError(
            f"--val-images {n} is outside 1..{len(labels)} (the validation images of {name}): "
            f"give at most {len(labels)}, or drop it to score every validation image"
        )
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * n / len(labels)
    take = np.floor(share).astype(np.int64)
    for c in np.argsort(-(share - take), kind="stable")[: n - int(take.sum())]:
        take[c] += 1
    rng = np.random.default_rng([seed, n])
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(chosen))


def _normalisation(train: Split, seed: int, progress: Progress | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population; 1 where 0) of the eval views of a seeded sample of `train`."""
    n = len(train)
    positions = (
        np.arange(n) if n <= NORM_SAMPLE else np.sort(np.random.default_rng(seed).choice(n, NORM_SAMPLE, replace=False))
    )
    sums = torch.zeros(train.channels, dtype=torch.float64)
    squares = torch.zeros(train.channels, dtype=torch.float64)
    pixels = 0
    reporter = progress if progress is not None and not train.source.in_memory else Silent()  # RAM: a blink
    with reporter.task("measuring the normalisation", len(positions), unit="image") as task:
        for position in positions:
            x = train[int(position)][0].double()
            sums += x.sum(dim=(1, 2))
            squares += (x * x).sum(dim=(1, 2))
            pixels += x.shape[1] * x.shape[2]
            task.advance()
    mean = sums / pixels
    var = (squares / pixels - mean * mean).clamp_min(0)
    std = var.sqrt().where(var > 1e-12, torch.ones_like(var))
    return tuple(float(v) for v in mean.float()), tuple(float(v) for v in std.float())


def manifest_fingerprint(collection: Collection, resolution: int, val_fraction: float, seed: int, channels: int) -> str:
    """16 hex chars from the manifest (names, sizes, mtimes) and the settings; opens no image."""
    digest = hashlib.blake2b(digest_size=8)
    for source in (collection.pool, collection.val):
        for line in source.manifest() if source is not None else ["no validation part"]:
            digest.update(line.encode())
            digest.update(b"\n")
    split = None if collection.val is not None else [val_fraction, seed]
    digest.update(json.dumps([LAYOUT, collection.classes, resolution, split, channels]).encode())
    return digest.hexdigest()


def _check_arguments(resolution: int, val_fraction: float, channels: int) -> None:
    if not isinstance(resolution, int) or resolution <= 0 or resolution % 32:
        raise QuadnasError(f"resolution {resolution} is not a positive multiple of 32: use 32, 64, 96, ...")
    if not 0 < val_fraction < 1:
        raise QuadnasError(f"val_fraction {val_fraction} is outside (0, 1): use e.g. 0.2")
    if channels <= 0:
        raise QuadnasError(f"channels {channels} is not positive: use 3 (RGB) or 1 (grey)")


def _check_class_sizes(collection: Collection, val_fraction: float) -> None:
    """Stratified splitting needs 2+ images per class and a class-sized val and train part."""
    labels = collection.pool.labels
    counts = np.bincount(labels, minlength=len(collection.classes))
    for name, count in zip(collection.classes, counts):
        if count < 2:
            raise QuadnasError(
                f"class '{name}' has {count} image(s), too few to split into train and "
                "validation: give it at least 2 images or remove the class"
            )
    n = len(labels)
    n_val = math.ceil(val_fraction * n)
    if min(n_val, n - n_val) < len(collection.classes):
        raise QuadnasError(
            f"val_fraction {val_fraction} of {n} images gives {n_val} validation and "
            f"{n - n_val} train images, fewer than the {len(collection.classes)} classes: "
            "add images or choose a val_fraction nearer 0.5"
        )
