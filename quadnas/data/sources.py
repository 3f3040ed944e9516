"""Labelled image collections that read one image at a time: in-memory or memory-mapped arrays, image files.

A `Source` knows its labels and a manifest without decoding any image; `image(i)` decodes
image i as float32 C,H,W in 0..1 at its own size and channel count. Sources are picklable, so
`DataLoader` workers decode in parallel.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from quadnas.errors import QuadnasError


class Source(ABC):
    """Images with integer labels 0..K-1; `manifest` identifies the content without reading pixels."""

    labels: np.ndarray  # int64, one per image

    def __len__(self) -> int:
        return len(self.labels)

    @abstractmethod
    def image(self, i: int) -> torch.Tensor:
        """Image i as float32 C,H,W in 0..1 (C 1 or 3)."""

    @abstractmethod
    def manifest(self) -> list[str]:
        """Lines that change whenever the content changes: paths, sizes, mtimes (or a content hash)."""

    @property
    def in_memory(self) -> bool:
        """Whether decoding is a memory copy (no loader workers needed)."""
        return False


class ArraySource(Source):
    """N,C,H,W pixels (uint8 0..255, or floats 0..1) in RAM or memory-mapped, with their labels."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, manifest: list[str], mapped: bool = False):
        self.pixels, self.labels, self._manifest, self.mapped = pixels, labels, manifest, mapped

    def image(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.pixels[i], copy=True))
        return x.float().div_(255.0) if not x.is_floating_point() else x.float()

    def manifest(self) -> list[str]:
        return self._manifest

    @property
    def in_memory(self) -> bool:
        return not self.mapped


@dataclass(frozen=True)
class ImageFile:
    """One image file of a folder: its path relative to the folder root, label, size and mtime."""

    relative: str
    label: int
    size: int
    mtime_ns: int


class FileSource(Source):
    """Image files under `root` decoded with Pillow on access."""

    def __init__(self, root: Path, files: list[ImageFile]):
        self.root, self.files = root, files
        self.labels = np.array([f.label for f in files], dtype=np.int64)

    def image(self, i: int) -> torch.Tensor:
        return read_image(self.root / self.files[i].relative)

    def manifest(self) -> list[str]:
        return [f"{f.relative}\t{f.label}\t{f.size}\t{f.mtime_ns}" for f in self.files]


class UnreadableImage(QuadnasError):
    """An image file Pillow cannot decode; training stops on it (the file is named)."""

    def __init__(self, message: str):
        # a DataLoader worker re-raises this in the main process with the worker's traceback
        # prepended: keep the one line that names the file and the fix
        lines = [line for line in message.splitlines() if line.strip()]
        last = lines[-1] if lines else message
        super().__init__(last.split(f"{type(self).__name__}: ", 1)[-1])


def read_image(path: Path) -> torch.Tensor:
    """An image file as float32 C,H,W in 0..1: grey images 1 channel, others RGB (alpha dropped)."""
    try:
        with Image.open(path) as image:
            bands = [b for b in image.getbands() if b != "A"]
            grey = len(bands) == 1 and bands[0] != "P"
            pixels = np.asarray(image.convert("L" if grey else "RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(
            f"unreadable image '{path}' ({error}): fix or remove it (training stops on it, nothing is skipped)"
        ) from None
    x = torch.from_numpy(pixels.copy())
    x = x[None] if grey else x.permute(2, 0, 1)
    return x.float().div_(255.0)


def readable_suffixes() -> frozenset[str]:
    """File name endings Pillow opens."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def scan_class(folder: Path, label: int, root: Path, suffixes: frozenset[str]) -> list[ImageFile]:
    """Every image file below `folder` (any depth, sorted, hidden files skipped), stat'ed but not opened."""
    found: list[ImageFile] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in suffixes:
                continue
            path = Path(dirpath) / name
            stat = path.stat()
            found.append(ImageFile(str(path.relative_to(root)), label, stat.st_size, stat.st_mtime_ns))
    return found
