import math
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quadnas.data import BUNDLED, Dataset, load_dataset
from quadnas.errors import QuadnasError
from quadnas.resources import shipped_dir

CIFAR_NAMES = [f"class{c}" for c in range(10)]


# ---- fixture helpers ---------------------------------------------------------
def write_npz(path: Path, x: np.ndarray, y: np.ndarray) -> str:
    np.savez(path, x=x, y=y)
    return str(path)


def class_pixels(n_per_class: int, classes: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N,H,W images whose constant value is 20 * label, labels in class order."""
    y = np.repeat(np.arange(classes), n_per_class)
    x = np.broadcast_to((20 * y).astype(np.uint8)[:, None, None], (len(y), size, size))
    return np.ascontiguousarray(x), y


def raw_pixels(dataset: Dataset, part: str = "train") -> torch.Tensor:
    """Undo the normalisation: pixels back in 0..1."""
    x = getattr(dataset, part).tensors[0]
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (dataset.mean, dataset.std))
    return x * std + mean


def write_cifar(folder: Path, per_class: int = 3, batches: int = 2, meta: bool = True) -> Path:
    """A tiny `cifar-10-batches-py` folder: class c has R=20c, G=255-20c, B=7."""
    folder.mkdir()
    labels = np.tile(np.arange(10), per_class)
    rgb = np.stack([20 * labels, 255 - 20 * labels, np.full_like(labels, 7)], axis=1)
    data = np.repeat(rgb.astype(np.uint8), 1024, axis=1)  # rows: 1024 R, 1024 G, 1024 B
    for b, rows in enumerate(np.array_split(np.arange(len(labels)), batches), start=1):
        batch = {b"batch_label": b"batch", b"labels": labels[rows].tolist(), b"data": data[rows]}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch))
    if meta:
        names = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
        (folder / "batches.meta").write_bytes(pickle.dumps(names))
    return folder


def write_image_folder(root: Path) -> Path:
    """3 classes x 4 PNGs of constant colour, mixed sizes and modes, plus files to ignore."""
    colours = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}
    sizes = [(20, 30), (64, 48), (32, 32), (100, 40)]
    for name, colour in colours.items():
        (root / name / "sub").mkdir(parents=True)
        for i, size in enumerate(sizes):
            image = Image.new("RGB", size, colour)
            if i == 1:
                image = image.convert("RGBA")
            where = root / name / ("sub" if i == 3 else "")
            image.save(where / f"img{i}.png")
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".hidden.png").write_bytes(b"macOS resource fork")
    Image.new("L", (24, 24), 128).save(root / "emu" / "grey.png")
    return root


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist5k")


def labels(part) -> list[int]:
    return part.tensors[1].tolist()


# ---- bundled -----------------------------------------------------------------
def test_digits(digits):
    assert BUNDLED == ("digits", "mnist5k", "mnist5k-clutter")
    assert digits.name == digits.source == "digits"
    assert digits.classes == tuple(str(d) for d in range(10)) and digits.num_classes == 10
    n = len(digits.train) + len(digits.val)
    assert n == 1797 and len(digits.val) == math.ceil(0.2 * n)
    x, y = digits.train.tensors
    assert x.shape == (len(digits.train), 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # grey repeated


def test_mnist5k(mnist):
    assert mnist.name == "mnist5k" and mnist.num_classes == 10
    assert len(mnist.train) + len(mnist.val) == 5000
    assert mnist.train.tensors[0].shape[1:] == (3, 32, 32)
    # 500 images per class: a stratified 20 % split holds exactly 100 of each
    assert Counter(labels(mnist.val)) == {c: 100 for c in range(10)}
    assert mnist.mean[0] == pytest.approx(0.13, abs=0.01)  # MNIST's known pixel mean


def test_mnist5k_clutter_keeps_labels_and_split_but_not_pixels(mnist):
    clutter = load_dataset("mnist5k-clutter")
    assert clutter.name == "mnist5k-clutter" and clutter.fingerprint != mnist.fingerprint
    assert torch.equal(clutter.val.tensors[1], mnist.val.tensors[1])  # same images in each part
    assert not torch.allclose(clutter.val.tensors[0], mnist.val.tensors[0], atol=0.5)


def test_cluttered_image_comes_from_its_own_digit_alone():
    from quadnas.clutter import CANVAS, cluttered

    digits = np.load(shipped_dir("datasets") / "mnist5k.npz")["x"][:6]
    images = cluttered(digits)
    assert images.shape == (6, CANVAS, CANVAS) and images.dtype == np.uint8
    assert np.array_equal(cluttered(digits[:3]), images[:3])  # the same on every call
    edited = digits.copy()
    edited[4] = 255 - edited[4]
    changed = cluttered(edited)
    assert not np.array_equal(changed[4], images[4])
    assert np.array_equal(np.delete(changed, 4, axis=0), np.delete(images, 4, axis=0))  # no leak between images
    background = cluttered(np.zeros_like(digits))  # the same strokes and noise, no digit
    assert (images >= background).all()
    assert ((images > background).sum(axis=(1, 2)) > 40).all()  # each digit adds its ink on top


def test_normalisation(digits):
    x = digits.train.tensors[0]
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-4
    assert len(digits.mean) == len(digits.std) == 3 and min(digits.std) > 0


def test_stratified_split(digits):
    train, val = Counter(labels(digits.train)), Counter(labels(digits.val))
    for c in range(10):
        assert abs(val[c] - 0.2 * (train[c] + val[c])) <= 1


def test_split_is_deterministic_per_seed():
    first = load_dataset("digits", seed=3)
    again = load_dataset("digits", seed=3)
    other = load_dataset("digits", seed=4)
    assert torch.equal(first.val.tensors[0], again.val.tensors[0])
    assert torch.equal(first.val.tensors[1], again.val.tensors[1])
    assert first.fingerprint == again.fingerprint
    assert not torch.equal(first.val.tensors[0], other.val.tensors[0])


def test_resize_and_channels():
    bigger = load_dataset("digits", resolution=64, channels=1)
    assert bigger.train.tensors[0].shape[1:] == (1, 64, 64)
    assert len(bigger.mean) == 1 and bigger.resolution == 64


def test_downsizing_is_antialiased(tmp_path):
    # columns j%4 in {1, 2} are white: plain bilinear 128 -> 32 samples only white pixels,
    # an antialiased resize averages over 4 columns and gives grey (0.5)
    column = np.isin(np.arange(128) % 4, (1, 2)).astype(np.uint8) * 255
    x = np.broadcast_to(column, (8, 128, 128)).copy()
    x[4:] = 255 - x[4:]
    path = write_npz(tmp_path / "stripes.npz", x, np.repeat([0, 1], 4))
    data = load_dataset(path, val_fraction=0.5)
    pixels = raw_pixels(data)[:, :, 8:24, 8:24]  # away from the borders
    assert pixels.shape[-1] == 16 and (pixels - 0.5).abs().max() < 0.05


# ---- npz ---------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW1", "NCHW3", "float"])
def test_npz_layouts(tmp_path, layout):
    x, y = class_pixels(4, 3)
    arrays = {
        "NHW": x,
        "NHWC1": x[..., None],
        "NHWC3": np.repeat(x[..., None], 3, axis=3),
        "NCHW1": x[:, None],
        "NCHW3": np.repeat(x[:, None], 3, axis=1),
        "float": x.astype(np.float32) / 255,
    }
    data = load_dataset(write_npz(tmp_path / f"{layout}.npz", arrays[layout], y))
    assert data.name == layout and data.classes == ("0", "1", "2")
    assert data.train.tensors[0].shape == (len(data.train), 3, 32, 32)
    for part in ("train", "val"):  # each image still carries its own label's value
        pixels, labels_ = raw_pixels(data, part), getattr(data, part).tensors[1]
        expected = (20 * labels_ / 255).view(-1, 1, 1, 1).expand_as(pixels)
        assert torch.allclose(pixels, expected, atol=1e-5)


def test_npz_channels_last_equals_channels_first(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (12, 16, 20, 3), dtype=np.uint8), np.repeat([0, 1, 2], 4)
    last = load_dataset(write_npz(tmp_path / "last.npz", x, y))
    first = load_dataset(write_npz(tmp_path / "first.npz", x.transpose(0, 3, 1, 2), y))
    assert torch.equal(last.train.tensors[0], first.train.tensors[0])


def test_npz_string_labels(tmp_path):
    x, y = class_pixels(4, 2)
    names = np.array(["zebra", "ant"])[y]
    a = load_dataset(write_npz(tmp_path / "a.npz", x, names))
    assert a.classes == ("ant", "zebra")


def test_npz_is_memory_mapped_unless_compressed(tmp_path):
    x, y = class_pixels(4, 2)
    mapped = load_dataset(write_npz(tmp_path / "plain.npz", x, y))
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    packed = load_dataset(str(tmp_path / "packed.npz"))
    assert isinstance(mapped.train.source.pixels, np.memmap) and not mapped.train.source.in_memory
    assert not isinstance(packed.train.source.pixels, np.memmap)
    assert torch.equal(mapped.val.tensors[0], packed.val.tensors[0])


def test_fingerprint_changes(tmp_path, digits):
    x, y = class_pixels(4, 3)
    path = write_npz(tmp_path / "data.npz", x, y)
    base = load_dataset(path)
    assert len(base.fingerprint) == 16 and int(base.fingerprint, 16) >= 0
    assert base.fingerprint == load_dataset(path).fingerprint
    variants = [
        load_dataset(path, resolution=64),
        load_dataset(path, seed=1),
        load_dataset(path, val_fraction=0.5),
        load_dataset(path, channels=1),
        digits,
    ]
    x[0, 0, 0] += 1  # same file, same size, one pixel changed
    variants.append(load_dataset(write_npz(tmp_path / "data.npz", x, y)))
    fingerprints = {base.fingerprint} | {v.fingerprint for v in variants}
    assert len(fingerprints) == len(variants) + 1


# ---- image folder ------------------------------------------------------------
def test_image_folder(tmp_path):
    root = write_image_folder(tmp_path / "pets")
    data = load_dataset(str(root), val_fraction=0.25)
    assert data.name == "pets" and data.classes == ("cat", "dog", "emu")
    assert Counter(labels(data.train)) + Counter(labels(data.val)) == {0: 4, 1: 4, 2: 5}
    pixels = raw_pixels(data)
    assert pixels.shape[1:] == (3, 32, 32)
    for image, label in zip(pixels, labels(data.train)):
        colour = image[:, 0, 0]
        assert torch.allclose(image, colour.view(3, 1, 1).expand_as(image), atol=1e-5)
        grey = torch.allclose(colour, torch.full((3,), 128 / 255), atol=1e-5)
        assert grey or int(colour.argmax()) == label  # class c's colour peaks in channel c


def test_image_folder_grey_channel(tmp_path):
    data = load_dataset(str(write_image_folder(tmp_path / "pets")), channels=1, val_fraction=0.25)
    assert data.train.tensors[0].shape[1:] == (1, 32, 32)


# ---- CIFAR-10 ----------------------------------------------------------------
def test_cifar_batches(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", per_class=4)
    data = load_dataset(str(folder), resolution=64, val_fraction=0.25)
    assert data.name == "cifar-10-batches-py" and data.classes == tuple(CIFAR_NAMES)
    assert len(data.train) + len(data.val) == 40 and len(data.val) == 10
    assert Counter(labels(data.val)) == {c: 1 for c in range(10)}
    pixels = raw_pixels(data)
    assert pixels.shape[1:] == (3, 64, 64)
    y = data.train.tensors[1].float()
    expected = torch.stack([20 * y, 255 - 20 * y, torch.full_like(y, 7)], dim=1) / 255
    assert torch.allclose(pixels[:, :, 5, 9], expected, atol=1e-5)  # R, G, B planes in order


def test_cifar_without_meta_and_grey(tmp_path):
    folder = write_cifar(tmp_path / "batches", per_class=2, batches=1, meta=False)
    data = load_dataset(str(folder), channels=1, val_fraction=0.5)
    assert data.classes == tuple(str(c) for c in range(10))
    y = data.train.tensors[1].float()
    luma = (0.299 * 20 * y + 0.587 * (255 - 20 * y) + 0.114 * 7) / 255
    assert torch.allclose(raw_pixels(data)[:, 0, 0, 0], luma, atol=1e-5)


# ---- errors ------------------------------------------------------------------
def assert_error(match: str, *args, **kwargs) -> str:
    with pytest.raises(QuadnasError, match=match) as info:
        load_dataset(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and ": " in message  # one line: the problem, then the fix
    return message


def test_error_missing_path(tmp_path):
    missing = str(tmp_path / "nowhere")
    message = assert_error("does not exist", missing)
    assert message == (
        f"data path '{missing}' does not exist: give digits, mnist5k, mnist5k-clutter, an image folder, "
        "a .npz file or a CIFAR-10 batches folder"
    )


def test_error_unreadable_path(tmp_path, monkeypatch):
    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refuse)  # chmod does not stop root, so simulate it
    assert_error("cannot read data path .*Permission denied.*check that it is", str(tmp_path))


def test_error_unsupported_file(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,2\n")
    assert_error("is not a .npz file", str(path))


def test_error_npz_contents(tmp_path):
    x, y = class_pixels(4, 2)
    np.savez(tmp_path / "no_y.npz", x=x, labels=y)
    assert_error("has no array y .*images as x and the labels as y", str(tmp_path / "no_y.npz"))
    np.savez(tmp_path / "no_x.npz", y=y)
    assert_error("has no array x", str(tmp_path / "no_x.npz"))
    short = write_npz(tmp_path / "len.npz", x[:7], y)
    assert_error("7 images in x but y has shape .*one label per image", short)
    assert_error("x of shape .*give N,H,W", write_npz(tmp_path / "5d.npz", x[:, None, None], y))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert_error("cannot read .*numpy.savez", str(tmp_path / "broken.npz"))


def test_error_image_folders(tmp_path):
    (tmp_path / "one" / "only").mkdir(parents=True)
    assert_error("1 class subfolder.*at least 2", str(tmp_path / "one"))
    root = write_image_folder(tmp_path / "pets")
    (root / "dog" / "bad.jpg").write_bytes(b"not a jpeg")
    assert_error(r"unreadable image '.*bad\.jpg'.*fix or remove it", str(root))


def test_error_arguments():
    for resolution in (0, -32, 48):
        message = f"resolution {resolution} is not a positive multiple of 32"
        assert_error(message, "digits", resolution)
    for fraction in (0, 1, 1.5):
        assert_error(f"val_fraction {fraction} is outside", "digits", val_fraction=fraction)
    assert_error("channels 0 is not positive", "digits", channels=0)


def test_error_small_classes(tmp_path):
    x, y = class_pixels(5, 3)
    y[-4:] = 1  # class 2 keeps one image
    assert_error("class '2' has 1 image.*at least 2", write_npz(tmp_path / "few.npz", x, y))
    x, y = class_pixels(2, 5)
    tight = write_npz(tmp_path / "tight.npz", x, y)
    assert_error("fewer than the 5 classes", tight, val_fraction=0.1)


def test_error_channel_mismatch(tmp_path):
    x, y = class_pixels(4, 2)
    rgb = write_npz(tmp_path / "rgb.npz", np.repeat(x[:, None], 3, axis=1), y)
    assert_error("images have 3 channels but 2 are wanted", rgb, channels=2)
