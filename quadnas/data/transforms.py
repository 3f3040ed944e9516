"""The few image transforms training needs, on float32 C,H,W tensors in 0..1 (torch only).

Two regimes by training resolution. At `SMALL_RESOLUTION` px or less (digits, CIFAR) images are
resized whole to the resolution; training pads by an eighth of the side and crops back at a random
place (the CIFAR recipe). Above it (ImageNet-style) evaluation resizes the shorter side to
resolution / `EVAL_CROP_FRACTION` and takes the centre square; training takes a random-resized
crop (area `CROP_SCALE` of the image, aspect ratio `CROP_RATIO`). Either may mirror left-right.
Randomness comes from the numpy generator passed in, so a sample's augmentation depends on its
seed only, not on which loader worker decodes it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from quadnas.errors import QuadnasError

Augment = Literal["none", "crop", "crop-flip"]
AUGMENTS: tuple[Augment, ...] = ("none", "crop", "crop-flip")
SMALL_RESOLUTION = 32
EVAL_CROP_FRACTION = 0.875  # the centre crop's side over the resized shorter side
CROP_SCALE = (0.25, 1.0)  # random-resized crop: fraction of the image area
CROP_RATIO = (3 / 4, 4 / 3)  # random-resized crop: aspect ratio range (log-uniform)
_LUMA = torch.tensor([0.299, 0.587, 0.114])  # ITU-R BT.601 weights: RGB -> grey


def resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of C,H,W to height x width, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == (height, width):
        return x
    shrinking = x.shape[-2] > height or x.shape[-1] > width
    out = F.interpolate(x[None], size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    return out[0]


def match_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey repeated to `channels`; RGB to grey by luma when one channel is wanted."""
    have = x.shape[0]
    if have == channels:
        return x
    if have == 1:
        return x.expand(channels, -1, -1)
    if have == 3 and channels == 1:
        return (x * _LUMA.view(3, 1, 1)).sum(dim=0, keepdim=True)
    raise QuadnasError(
        f"images have {have} channels but {channels} are wanted: give grey or RGB images, "
        f"or use a search space with in_channels {have}"
    )


def eval_view(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """The deterministic view: whole-image resize (small resolutions) or resize and centre crop."""
    if resolution <= SMALL_RESOLUTION:
        return resize(x, resolution, resolution)
    height, width = x.shape[-2:]
    short = round(resolution / EVAL_CROP_FRACTION)
    scale = short / min(height, width)
    x = resize(x, max(short, round(height * scale)), max(short, round(width * scale)))
    top, left = (x.shape[-2] - resolution) // 2, (x.shape[-1] - resolution) // 2
    return x[:, top : top + resolution, left : left + resolution]


def train_view(x: torch.Tensor, resolution: int, augment: Augment, rng: np.random.Generator) -> torch.Tensor:
    """A random view for training: pad-and-crop or random-resized crop, then a random mirror."""
    if augment == "none":
        return eval_view(x, resolution)
    if resolution <= SMALL_RESOLUTION:
        x = resize(x, resolution, resolution)
        pad = max(1, resolution // 8)
        padded = F.pad(x, (pad, pad, pad, pad))
        top, left = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
        x = padded[:, top : top + resolution, left : left + resolution]
    else:
        x = _random_resized_crop(x, resolution, rng)
    if augment == "crop-flip" and rng.random() < 0.5:
        x = x.flip(-1)
    return x


def _random_resized_crop(x: torch.Tensor, resolution: int, rng: np.random.Generator) -> torch.Tensor:
    """A crop of random area and aspect ratio (10 tries, else the centre square), resized to resolution."""
    height, width = x.shape[-2:]
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            return resize(x[:, top : top + h, left : left + w], resolution, resolution)
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(x[:, top : top + side, left : left + side], resolution, resolution)
