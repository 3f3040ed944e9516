"""The streaming data layer: manifests, splits of their own, subsets, augmentation, the loader's shards, bad input."""

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from quadnas.data import load_dataset, stratified_subset
from quadnas.data.load import manifest_fingerprint
from quadnas.data.loader import EpochSampler
from quadnas.data.readers import read
from quadnas.data.transforms import eval_view, train_view
from quadnas.errors import QuadnasError

COLOURS = {"ant": (200, 10, 10), "bee": (10, 200, 10), "cow": (10, 10, 200)}


def write_folder(root: Path, per_class: int = 4, size: int = 40, classes=COLOURS) -> Path:
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.new("RGB", (size + i, size), colour).save(root / name / f"{i}.png")
    return root


def one_line_error(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(QuadnasError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and ": " in message
    return message


def test_fingerprint_comes_from_the_manifest_and_opens_no_image(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "pets")
    first = manifest_fingerprint(read(str(root)), 32, 0.2, 0, 3)

    def refuse(*args, **kwargs):
        raise AssertionError("an image was opened")

    monkeypatch.setattr(Image, "open", refuse)
    assert manifest_fingerprint(read(str(root)), 32, 0.2, 0, 3) == first
    assert manifest_fingerprint(read(str(root)), 64, 0.2, 0, 3) != first
    monkeypatch.undo()
    Image.new("RGB", (41, 40), (1, 2, 3)).save(root / "ant" / "0.png")  # same name, new size and mtime
    assert manifest_fingerprint(read(str(root)), 32, 0.2, 0, 3) != first


def test_train_val_folder_pair(tmp_path):
    write_folder(tmp_path / "set" / "train", per_class=3)
    write_folder(tmp_path / "set" / "val", per_class=2)
    data = load_dataset(str(tmp_path / "set"))
    assert data.classes == ("ant", "bee", "cow")
    assert len(data.train) == 9 and len(data.val) == 6
    assert data.val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.fingerprint == load_dataset(str(tmp_path / "set"), val_fraction=0.5, seed=3).fingerprint  # no split


def test_bad_folders_are_one_line_each(tmp_path):
    write_folder(tmp_path / "pair" / "train")
    write_folder(tmp_path / "pair" / "val", classes={"ant": (1, 1, 1), "bee": (2, 2, 2), "dog": (3, 3, 3)})
    message = one_line_error("different classes", load_dataset, str(tmp_path / "pair"))
    assert "only in train/: cow" in message and "only in val/: dog" in message
    root = write_folder(tmp_path / "empty")
    (root / "emu").mkdir()
    (root / "emu" / "notes.txt").write_text("no image")
    one_line_error("class folder .*emu' holds no image.*remove the folder", load_dataset, str(root))


# A loader worker that dies with an error leaves state in torch's SIGCHLD handling that crashed this
# interpreter at a later test's subprocess, so the failing worker runs in a process of its own.
_UNREADABLE = """
import sys, torch
from quadnas.data import load_dataset
from quadnas.data.loader import EpochSampler, epoch_batches
from quadnas.data.sources import UnreadableImage
data = load_dataset(sys.argv[1], val_fraction=0.5)
bad = data.train.source.root / data.train.source.files[int(data.train.indices[-1])].relative
bad.write_bytes(b"not a png")
try:
    for _ in epoch_batches(data.train, EpochSampler(len(data.train), seed=0), 5, 1, torch.device("cpu")):
        pass
except UnreadableImage as error:
    print(bad)
    print(error)
"""


def test_unreadable_image_stops_training_with_one_line_from_a_worker(tmp_path):
    root = write_folder(tmp_path / "pets", per_class=20)
    done = subprocess.run(
        [sys.executable, "-c", _UNREADABLE, str(root)], capture_output=True, text=True, timeout=300, check=True
    )
    bad, message, *rest = done.stdout.splitlines() + ["", ""]
    assert bad and not rest[0], done.stdout
    assert message.startswith(f"unreadable image '{bad}'") and "nothing is skipped" in message


def write_cifar(folder: Path, train: int, test: int, hundred: bool = False) -> Path:
    """CIFAR batches whose red plane is 20 x label; the test batch's green plane is 255 (train 0)."""
    folder.mkdir()
    key = b"fine_labels" if hundred else b"labels"
    for name, n, green in (
        ("train" if hundred else "data_batch_1", train, 0),
        ("test" if hundred else "test_batch", test, 255),
    ):
        labels = np.arange(n) % 10
        rows = np.concatenate(
            [np.repeat((20 * labels)[:, None], 1024, 1), np.full((n, 1024), green), np.zeros((n, 1024))], axis=1
        )
        (folder / name).write_bytes(pickle.dumps({key: labels.tolist(), b"data": rows.astype(np.uint8)}))
    return folder


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_test_batch_is_the_validation_part(tmp_path, hundred):
    data = load_dataset(str(write_cifar(tmp_path / "cifar", train=30, test=20, hundred=hundred)))
    assert len(data.train) == 30 and len(data.val) == 20
    mean, std = torch.tensor(data.mean), torch.tensor(data.std)
    green = data.val.tensors[0][:, 1, 5, 5] * std[1] + mean[1]
    assert torch.allclose(green, torch.ones(20), atol=1e-5)  # validation images are the test batch's
    assert data.val.labels.tolist() == [i % 10 for i in range(20)]


def test_val_images_is_a_fixed_stratified_subset(tmp_path):
    data = load_dataset("digits", val_images=100)
    full = load_dataset("digits")
    assert len(data.val) == 100 and data.fingerprint == full.fingerprint
    counts = np.bincount(data.val.labels.numpy(), minlength=10)
    assert counts.min() >= 9 and counts.max() <= 11
    assert torch.equal(data.val.labels, load_dataset("digits", val_images=100).val.labels)
    assert set(data.val.indices.tolist()) <= set(full.val.indices.tolist())
    one_line_error(r"--val-images 400 is outside 1\.\.360", load_dataset, "digits", val_images=400)


def test_stratified_subset_keeps_class_shares():
    labels = np.array([0] * 90 + [1] * 10)
    chosen = stratified_subset(labels, 20, seed=0, name="x")
    assert len(chosen) == 20 and np.bincount(labels[chosen]).tolist() == [18, 2]


def test_augmented_views_are_seeded_per_sample_and_epoch():
    data = load_dataset("mnist5k").train.with_view(augment="crop", seed=1)
    a, b, c = data[(0, 5)][0], data[(0, 5)][0], data[(1, 5)][0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(data[5][0], data.with_view(augment="none")[(0, 5)][0])  # a position is the eval view


def test_transforms_keep_the_resolution_and_mirror():
    x = torch.rand(3, 50, 70)
    assert eval_view(x, 64).shape == (3, 64, 64) and eval_view(x, 32).shape == (3, 32, 32)
    for resolution in (32, 64):
        for seed in range(5):
            view = train_view(x, resolution, "crop-flip", np.random.default_rng(seed))
            assert view.shape == (3, resolution, resolution)
    ramp = torch.arange(32.0).expand(1, 32, 32)  # brighter to the right
    flips = [train_view(ramp, 32, "crop-flip", np.random.default_rng(s))[0, 16, 8:24].diff().mean() for s in range(20)]
    assert min(flips) < 0 < max(flips)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_are_disjoint_and_cover_the_epoch(world):
    shards = [list(EpochSampler(100, seed=0, rank=r, world=world)) for r in range(world)]
    positions = [p for shard in shards for _, p in shard]
    assert len(positions) == len(set(positions)) == 100 // world * world
    assert all(len(shard) == 100 // world for shard in shards)
    alone = EpochSampler(100, seed=0).positions()
    batch = 6 * world  # global batch s = the union of the ranks' s-th batches of 6
    for s in range(100 // batch):
        union = sorted(p for shard in shards for _, p in shard[6 * s : 6 * (s + 1)])
        assert union == sorted(alone[batch * s : batch * (s + 1)])


def test_sampler_starts_mid_epoch():
    sampler = EpochSampler(50, seed=2)
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.set_epoch(3, start=20)
    assert list(sampler) == whole[20:] and len(sampler) == 30
