"""Readers: a data source name or path -> a `Collection` of lazily readable images, no pixel decoded.

Bundled: `digits` (scikit-learn's 8x8 digits), `mnist5k` and `mnist5k-clutter` (in RAM: they are a
few MB). Paths: an image folder with one subfolder per class, or with `train/` and `val/` each
holding the same class subfolders; CIFAR-10 (`data_batch_*`, `test_batch`) or CIFAR-100 (`train`,
`test`) python batches, whose test batch is the validation part; an `.npz` file with arrays `x`
and `y`, memory-mapped when stored uncompressed (`numpy.savez`).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from quadnas.data.sources import ArraySource, FileSource, ImageFile, Source, readable_suffixes, scan_class
from quadnas.errors import QuadnasError
from quadnas.resources import shipped_dir

BUNDLED = ("digits", "mnist5k", "mnist5k-clutter")
SOURCES_HINT = "give digits, mnist5k, mnist5k-clutter, an image folder, a .npz file or a CIFAR-10 batches folder"


@dataclass(frozen=True)
class Collection:
    """What a reader found: classes, the training pool and, where the source has one, its validation part."""

    name: str
    classes: tuple[str, ...]
    pool: Source
    val: Source | None  # None: split the pool
    mirror_invariant: bool  # whether a left-right mirror keeps an image's class (not for digits)


def read(source: str) -> Collection:
    """Dispatch on `source`; nothing is decoded, only listed and stat'ed (bundled sets are loaded)."""
    if source == "digits":
        return _digits()
    if source in ("mnist5k", "mnist5k-clutter"):
        return _mnist5k(clutter=source == "mnist5k-clutter")
    path = Path(source).expanduser()
    if not path.exists():
        raise QuadnasError(f"data path '{source}' does not exist: {SOURCES_HINT}")
    try:
        if path.is_dir():
            name = path.resolve().name
            if any(path.glob("data_batch_*")) or (path / "train").is_file():
                return _cifar(path, name)
            return _folder(path, name)
        if path.suffix.lower() == ".npz":
            return _npz(path)
    except OSError as error:
        raise QuadnasError(
            f"cannot read data path '{source}' ({error.strerror or error}): check that it is readable"
        ) from None
    raise QuadnasError(f"data file '{source}' is not a .npz file: {SOURCES_HINT}")


def _content(name: str, *arrays: np.ndarray) -> list[str]:
    """The manifest of a bundled set: its name and a hash of its (few MB of) arrays."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return [f"bundled {name} {digest.hexdigest()}"]


def _file_line(path: Path) -> str:
    """A manifest line for one file: name, size, mtime."""
    stat = path.stat()
    return f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}"


# ---- bundled -----------------------------------------------------------------
def _digits() -> Collection:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = (bunch.images[:, None] / 16.0).astype(np.float32)
    labels = bunch.target.astype(np.int64)
    classes = tuple(str(t) for t in bunch.target_names)
    return Collection("digits", classes, ArraySource(pixels, labels, _content("digits", pixels, labels)), None, False)


def _mnist5k(clutter: bool) -> Collection:
    """The 5,000-image MNIST subset in `datasets/mnist5k.npz` (provenance beside it), or its cluttered variant."""
    with np.load(shipped_dir("datasets") / "mnist5k.npz", allow_pickle=False) as arrays:
        digits, labels = arrays["x"], arrays["y"].astype(np.int64)
    name = "mnist5k"
    if clutter:
        from quadnas.clutter import cluttered

        digits, name = cluttered(digits), "mnist5k-clutter"
    pixels = digits[:, None]
    source = ArraySource(pixels, labels, _content(name, pixels, labels))
    return Collection(name, tuple(str(d) for d in range(10)), source, None, False)


# ---- .npz --------------------------------------------------------------------
def _npz(path: Path) -> Collection:
    """Arrays `x` (N,H,W / N,H,W,C / N,C,H,W; uint8 0..255 or float 0..1) and `y` (labels)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in ("x", "y") if key not in arrays.files]
            if missing:
                raise QuadnasError(
                    f"'{path}' has no array {' or '.join(missing)} (it holds "
                    f"{', '.join(arrays.files) or 'nothing'}): save the images as x and the "
                    "labels as y, e.g. np.savez(path, x=images, y=labels)"
                )
            y = arrays["y"]
        x, mapped = _mapped_member(path, "x")
    except (ValueError, TypeError, EOFError, zipfile.BadZipFile) as error:
        raise QuadnasError(f"cannot read '{path}' as .npz ({error}): write it with numpy.savez") from None
    x = _channels_first(x, path)
    if y.ndim != 1 or len(x) != len(y):
        raise QuadnasError(
            f"'{path}' has {len(x)} images in x but y has shape {y.shape}: give one label per image (y of shape (N,))"
        )
    labels, classes = _encode_labels(y, path)
    source = ArraySource(x, labels, [_file_line(path)], mapped=mapped)
    return Collection(path.stem, classes, source, None, True)


def _mapped_member(path: Path, key: str) -> tuple[np.ndarray, bool]:
    """Array `key` of an .npz, memory-mapped when stored uncompressed, else read into RAM."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(member)
                header = member.tell()
            if not dtype.hasobject:
                with path.open("rb") as raw:  # the member's data start after its local zip header
                    raw.seek(info.header_offset + 26)
                    name_len, extra_len = np.frombuffer(raw.read(4), dtype="<u2")
                offset = info.header_offset + 30 + int(name_len) + int(extra_len) + header
                order: Literal["C", "F"] = "F" if fortran else "C"
                mapped: np.ndarray = np.memmap(
                    str(path), dtype=dtype, mode="r", offset=offset, shape=shape, order=order
                )
                return mapped, True
    with np.load(path, allow_pickle=False) as arrays:
        return arrays[key], False


def _channels_first(x: np.ndarray, path: Path) -> np.ndarray:
    """N,H,W / N,H,W,C / N,C,H,W with C 1 or 3 -> N,C,H,W (a view: nothing is read)."""
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


# ---- CIFAR -------------------------------------------------------------------
def _cifar(path: Path, name: str) -> Collection:
    """CIFAR-10 (`data_batch_*` + `test_batch`, `batches.meta`) or CIFAR-100 (`train` + `test`, `meta`).

    The test batch is the validation part; without it the training batches are split. The
    pickles are loaded with `pickle` (uint8, 150 MB for CIFAR-10): read only folders you trust.
    """
    hundred = (path / "train").is_file()
    train_files = [path / "train"] if hundred else sorted(path.glob("data_batch_*"), key=_numbers_in_name)
    test = path / ("test" if hundred else "test_batch")
    label_key = "fine_labels" if hundred else "labels"
    pool = _cifar_arrays(train_files, label_key)
    val = _cifar_arrays([test], label_key) if test.is_file() else None
    meta = path / ("meta" if hundred else "batches.meta")
    y = pool[1] if val is None else np.concatenate([pool[1], val[1]])
    if meta.exists():
        names = _field(_unpickle(meta), "fine_label_names" if hundred else "label_names", meta)
        classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    else:
        classes = tuple(str(c) for c in range(int(y.max()) + 1))
    if y.min() < 0 or y.max() >= len(classes):
        raise QuadnasError(
            f"CIFAR folder '{path}' has labels {y.min()}..{y.max()} but "
            f"{len(classes)} label names in {meta.name}: give labels 0..{len(classes) - 1}"
        )
    lines = [_file_line(f) for f in [*train_files, *([test] if val is not None else [])]]
    pool_source = ArraySource(pool[0], pool[1], ["train", *lines])
    val_source = None if val is None else ArraySource(val[0], val[1], ["test", *lines])
    return Collection(name, classes, pool_source, val_source, True)


def _cifar_arrays(files: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for batch in files:
        content = _unpickle(batch)
        data = np.asarray(_field(content, "data", batch), dtype=np.uint8)
        labels = np.asarray(_field(content, label_key, batch), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
            raise QuadnasError(
                f"CIFAR batch '{batch}' has data of shape {data.shape} and "
                f"{len(labels)} labels: give N x 3072 uint8 rows and one label each"
            )
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def _numbers_in_name(path: Path) -> list[int]:
    """Sort key that puts data_batch_2 before data_batch_10."""
    return [int(t) for t in re.findall(r"\d+", path.name)]


def _unpickle(path: Path) -> dict[bytes | str, Any]:
    try:
        with path.open("rb") as file:
            content = pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as error:
        raise QuadnasError(
            f"'{path}' is not a CIFAR python pickle ({error}): use the cifar-10-batches-py files as released"
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


# ---- image folders -----------------------------------------------------------
def _folder(path: Path, name: str) -> Collection:
    """One subfolder per class, or `train/` and `val/` holding the same class subfolders."""
    if (path / "train").is_dir() and (path / "val").is_dir():
        train_classes, train_files = _class_folders(path / "train", path)
        val_classes, val_files = _class_folders(path / "val", path)
        if train_classes != val_classes:
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise QuadnasError(
                f"'{path}' has train/ and val/ with different classes (only in train/: "
                f"{', '.join(only_train) or 'none'}; only in val/: {', '.join(only_val) or 'none'}): "
                "give both the same class subfolders"
            )
        return Collection(name, train_classes, FileSource(path, train_files), FileSource(path, val_files), True)
    classes, files = _class_folders(path, path)
    return Collection(name, classes, FileSource(path, files), None, True)


def _class_folders(folder: Path, root: Path) -> tuple[tuple[str, ...], list[ImageFile]]:
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise QuadnasError(
            f"image folder '{folder}' has {len(class_dirs)} class subfolder(s): put each "
            "class's images in its own subfolder (at least 2), or give a CIFAR-10 "
            "batches folder with data_batch_* files"
        )
    suffixes = readable_suffixes()
    files: list[ImageFile] = []
    for label, class_dir in enumerate(class_dirs):
        found = scan_class(class_dir, label, root, suffixes)
        if not found:
            raise QuadnasError(
                f"class folder '{class_dir}' holds no image Pillow reads: add images or remove the folder"
            )
        files += found
    return tuple(d.name for d in class_dirs), files
