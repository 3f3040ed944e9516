"""Datasets behind one interface, held in memory as normalised float32 tensors.

`load_dataset(source)` takes a bundled name (`digits`, `mnist5k`, `mnist5k-clutter`) or
a path: a CIFAR-10 python batches folder (`data_batch_*` pickles), an image folder (one
subfolder per class) or an `.npz` file with arrays `x` and `y`. Images are
resized to the training resolution, matched to the network's input channels,
split into stratified train/validation parts (seeded) and normalised with the
train split's per-channel mean and std. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import TensorDataset

from quadnas.errors import QuadnasError
from quadnas.progress import Progress
from quadnas.resources import shipped_dir

BUNDLED = ("digits", "mnist5k", "mnist5k-clutter")
_SOURCES_HINT = "give digits, mnist5k, mnist5k-clutter, an image folder, a .npz file or a CIFAR-10 batches folder"
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: RGB -> grey
_CHUNK = 4096  # images converted at a time, bounds the peak memory of a conversion


@dataclass(frozen=True)
class Dataset:
    """A labelled image set split into normalised train and validation tensors."""

    name: str
    source: str
    classes: tuple[str, ...]
    train: TensorDataset  # (x float32 N,C,H,W normalised, y int64)
    val: TensorDataset
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fingerprint: str  # 16 hex chars: content, resolution, val_fraction, seed, channels

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class _Images:
    """What a reader returns: resized images, integer labels, class names."""

    x: torch.Tensor  # float32 N,channels,resolution,resolution, not yet normalised
    y: np.ndarray  # int64 N
    classes: tuple[str, ...]


def load_dataset(
    source: str,
    resolution: int = 32,
    val_fraction: float = 0.2,
    seed: int = 0,
    channels: int = 3,
    progress: Progress | None = None,
) -> Dataset:
    """Load `source`, resize to `resolution`, split (stratified, seeded) and normalise.

    The fingerprint hashes the decoded pixels and labels (so a copy of the same
    data elsewhere gets the same fingerprint and any edit changes it) together
    with `resolution`, `val_fraction`, `seed` and `channels`.
    """
    _check_arguments(resolution, val_fraction, channels)
    digest = hashlib.blake2b(digest_size=8)
    name, images = _read(source, resolution, channels, progress, digest)
    _check_class_sizes(images, val_fraction)
    from sklearn.model_selection import train_test_split  # imported on use: it slows every CLI start

    train_idx, val_idx = train_test_split(
        np.arange(len(images.y)), test_size=val_fraction, random_state=seed, stratify=images.y
    )
    x_train, x_val = images.x[train_idx], images.x[val_idx]
    var, mean = torch.var_mean(x_train, dim=(0, 2, 3), correction=0)
    std = var.sqrt().where(var > 0, torch.ones_like(var))
    for x in (x_train, x_val):
        x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    y = torch.from_numpy(images.y)
    digest.update(images.y.tobytes())
    digest.update(json.dumps([images.classes, resolution, val_fraction, seed, channels]).encode())
    return Dataset(
        name=name,
        source=source,
        classes=images.classes,
        train=TensorDataset(x_train, y[train_idx]),
        val=TensorDataset(x_val, y[val_idx]),
        resolution=resolution,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        fingerprint=digest.hexdigest(),
    )


def _check_arguments(resolution: int, val_fraction: float, channels: int) -> None:
    if not isinstance(resolution, int) or resolution <= 0 or resolution % 32:
        raise QuadnasError(f"resolution {resolution} is not a positive multiple of 32: use 32, 64, 96, ...")
    if not 0 < val_fraction < 1:
        raise QuadnasError(f"val_fraction {val_fraction} is outside (0, 1): use e.g. 0.2")
    if channels <= 0:
        raise QuadnasError(f"channels {channels} is not positive: use 3 (RGB) or 1 (grey)")


def _check_class_sizes(images: _Images, val_fraction: float) -> None:
    """Stratified splitting needs 2+ images per class and a class-sized val and train part."""
    counts = np.bincount(images.y, minlength=len(images.classes))
    for name, count in zip(images.classes, counts):
        if count < 2:
            raise QuadnasError(
                f"class '{name}' has {count} image(s), too few to split into train and "
                "validation: give it at least 2 images or remove the class"
            )
    n = len(images.y)
    n_val = math.ceil(val_fraction * n)
    if min(n_val, n - n_val) < len(images.classes):
        raise QuadnasError(
            f"val_fraction {val_fraction} of {n} images gives {n_val} validation and "
            f"{n - n_val} train images, fewer than the {len(images.classes)} classes: "
            "add images or choose a val_fraction nearer 0.5"
        )


# ---- sources ---------------------------------------------------------------
def _read(source: str, resolution: int, channels: int, progress: Progress | None, digest: Any) -> tuple[str, _Images]:
    """Dispatch on `source`; returns the dataset's short name and its images."""
    if source == "digits":
        return source, _read_digits(resolution, channels, digest)
    if source in ("mnist5k", "mnist5k-clutter"):
        return source, _read_mnist5k(resolution, channels, digest, clutter=source == "mnist5k-clutter")
    path = Path(source).expanduser()
    if not path.exists():
        raise QuadnasError(f"data path '{source}' does not exist: {_SOURCES_HINT}")
    try:
        if path.is_dir():
            name = path.resolve().name
            if any(path.glob("data_batch_*")):
                return name, _read_cifar(path, resolution, channels, digest)
            return name, _read_folder(path, resolution, channels, progress, digest)
        if path.suffix.lower() == ".npz":
            return path.stem, _read_npz(path, resolution, channels, digest)
    except OSError as error:
        raise QuadnasError(
            f"cannot read data path '{source}' ({error.strerror or error}): check that it is readable"
        ) from None
    raise QuadnasError(f"data file '{source}' is not a .npz file: {_SOURCES_HINT}")


def _read_digits(resolution: int, channels: int, digest: Any) -> _Images:
    """scikit-learn's bundled 8x8 digits (1,797 images, values 0..16)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = _to_tensor(bunch.images[:, None] / 16.0, channels, resolution, digest)
    classes = tuple(str(t) for t in bunch.target_names)
    return _Images(x, bunch.target.astype(np.int64), classes)


def _read_mnist5k(resolution: int, channels: int, digest: Any, clutter: bool) -> _Images:
    """The 5,000-image MNIST subset shipped in `datasets/mnist5k.npz` (provenance and licence
    beside it), or with `clutter` its harder variant made by `quadnas.clutter`."""
    with np.load(shipped_dir("datasets") / "mnist5k.npz", allow_pickle=False) as arrays:
        digits, labels = arrays["x"], arrays["y"].astype(np.int64)
    if clutter:
        from quadnas.clutter import cluttered

        digits = cluttered(digits)
    pixels = digits[:, None]
    x = _to_tensor(pixels, channels, resolution, digest)
    return _Images(x, labels, tuple(str(d) for d in range(10)))


def _read_npz(path: Path, resolution: int, channels: int, digest: Any) -> _Images:
    """Arrays `x` (N,H,W / N,H,W,C / N,C,H,W; uint8 0..255 or float) and `y` (labels)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in ("x", "y") if key not in arrays.files]
            if missing:
                raise QuadnasError(
                    f"'{path}' has no array {' or '.join(missing)} (it holds "
                    f"{', '.join(arrays.files) or 'nothing'}): save the images as x and the "
                    "labels as y, e.g. np.savez(path, x=images, y=labels)"
                )
            x, y = arrays["x"], arrays["y"]
    except (ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise QuadnasError(f"cannot read '{path}' as .npz ({error}): write it with numpy.savez") from None
    x = _channels_first(x, path)
    if y.ndim != 1 or len(x) != len(y):
        raise QuadnasError(
            f"'{path}' has {len(x)} images in x but y has shape {y.shape}: give one label per image (y of shape (N,))"
        )
    labels, classes = _encode_labels(y, path)
    return _Images(_to_tensor(x, channels, resolution, digest), labels, classes)


def _channels_first(x: np.ndarray, path: Path) -> np.ndarray:
    """N,H,W / N,H,W,C / N,C,H,W with C 1 or 3 -> N,C,H,W."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        first, last = x.shape[1] in (1, 3), x.shape[3] in (1, 3)
        if last and not first:
            return x.transpose(0, 3, 1, 2)
        if first and not last:
            return x
    raise QuadnasError(
        f"'{path}' has x of shape {x.shape}: give N,H,W or N,H,W,C or N,C,H,W images with C 1 (grey) or 3 (RGB)"
    )


def _encode_labels(y: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map labels (integers, integral floats or strings) to 0..K-1, classes sorted."""
    if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iuU":
        raise QuadnasError(f"'{path}' has y of type {y.dtype}: give integer or string class labels")
    values, labels = np.unique(y, return_inverse=True)
    return labels.astype(np.int64), tuple(str(v) for v in values)


def _read_cifar(path: Path, resolution: int, channels: int, digest: Any) -> _Images:
    """CIFAR-10 python batches: `data_batch_*` pickles are the pool (test_batch unused).

    The pickles are loaded with `pickle`: read only folders you trust.
    """
    batches = sorted(path.glob("data_batch_*"), key=_numbers_in_name)
    xs, ys = [], []
    for batch in batches:
        content = _unpickle(batch)
        data = np.asarray(_field(content, "data", batch), dtype=np.uint8)
        labels = np.asarray(_field(content, "labels", batch), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise QuadnasError(
                f"CIFAR-10 batch '{batch}' has data of shape {data.shape} and "
                f"{len(labels)} labels: give N x 3072 uint8 rows and one label each"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    y = np.concatenate(ys)
    meta = path / "batches.meta"
    if meta.exists():
        classes = tuple(
            n.decode() if isinstance(n, bytes) else str(n) for n in _field(_unpickle(meta), "label_names", meta)
        )
    else:
        classes = tuple(str(c) for c in range(int(y.max()) + 1))
    if y.min() < 0 or y.max() >= len(classes):
        raise QuadnasError(
            f"CIFAR-10 folder '{path}' has labels {y.min()}..{y.max()} but "
            f"{len(classes)} label names in batches.meta: give labels 0..{len(classes) - 1}"
        )
    return _Images(_to_tensor(np.concatenate(xs), channels, resolution, digest), y, classes)


def _numbers_in_name(path: Path) -> list[int]:
    """Sort key that puts data_batch_2 before data_batch_10."""
    return [int(t) for t in re.findall(r"\d+", path.name)]


def _unpickle(path: Path) -> dict[bytes | str, Any]:
    try:
        with path.open("rb") as file:
            content = pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as error:
        raise QuadnasError(
            f"'{path}' is not a CIFAR-10 python pickle ({error}): use the cifar-10-batches-py files as released"
        ) from None
    if not isinstance(content, dict):
        raise QuadnasError(f"'{path}' holds no dict: use the cifar-10-batches-py files as released")
    return content


def _field(content: dict[bytes | str, Any], key: str, path: Path) -> Any:
    """A CIFAR pickle entry; the released files use bytes keys, re-pickled ones str keys."""
    for candidate in (key.encode(), key):
        if candidate in content:
            return content[candidate]
    raise QuadnasError(f"'{path}' has no '{key}' entry: use the cifar-10-batches-py files as released")


def _read_folder(path: Path, resolution: int, channels: int, progress: Progress | None, digest: Any) -> _Images:
    """One subfolder per class (sorted names), images anywhere below it, read with Pillow."""
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise QuadnasError(
            f"image folder '{path}' has {len(class_dirs)} class subfolder(s): put each "
            "class's images in its own subfolder (at least 2), or give a CIFAR-10 "
            "batches folder with data_batch_* files"
        )
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    files = [
        (file, label)
        for label, class_dir in enumerate(class_dirs)
        for file in sorted(class_dir.rglob("*"))
        if file.suffix.lower() in readable and file.is_file() and not file.name.startswith(".")
    ]
    x = torch.empty((len(files), channels, resolution, resolution))
    with (progress or Progress()).task(f"loading {path.name}", len(files), unit="image") as task:
        for i, (file, _) in enumerate(files):
            x[i] = _to_tensor(_read_image(file)[None], channels, resolution, digest)[0]
            digest.update(str(file.relative_to(path)).encode())
            task.advance()
    y = np.array([label for _, label in files], dtype=np.int64)
    return _Images(x, y, tuple(d.name for d in class_dirs))


def _read_image(file: Path) -> np.ndarray:
    """An image file as a C,H,W uint8 array: grey images 1 channel, others RGB."""
    try:
        with Image.open(file) as image:
            bands = [b for b in image.getbands() if b != "A"]
            grey = len(bands) == 1 and bands[0] != "P"
            pixels = np.asarray(image.convert("L" if grey else "RGB"))
    except (OSError, ValueError) as error:
        raise QuadnasError(f"unreadable image '{file}' ({error}): fix or remove it") from None
    return pixels[None] if grey else pixels.transpose(2, 0, 1)


# ---- pixels ----------------------------------------------------------------
def _to_tensor(images: np.ndarray, channels: int, resolution: int, digest: Any) -> torch.Tensor:
    """N,C,H,W pixels (integers 0..255 or floats) -> float32 N,channels,res,res; hashes them."""
    out = torch.empty((len(images), channels, resolution, resolution))
    for start in range(0, len(images), _CHUNK):
        chunk = np.ascontiguousarray(images[start : start + _CHUNK])
        digest.update(f"{chunk.dtype}{chunk.shape}".encode())
        digest.update(chunk.tobytes())
        x = torch.from_numpy(chunk.astype(np.float32))
        if chunk.dtype.kind in "iu":
            x /= 255.0
        out[start : start + len(chunk)] = _resize(_match_channels(x, channels), resolution)
    return out


def _match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey repeated to `channels`; RGB to grey by luma when one channel is wanted."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1)
    if have == 3 and channels == 1:
        return (x * _LUMA.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    raise QuadnasError(
        f"images have {have} channels but {channels} are wanted: give grey or RGB images, "
        f"or use a search space with in_channels {have}"
    )


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize to resolution x resolution, antialiased when shrinking."""
    height, width = x.shape[-2:]
    if (height, width) == (resolution, resolution):
        return x
    shrinking = height > resolution or width > resolution
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrinking)
