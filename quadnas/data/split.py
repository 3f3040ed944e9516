"""One part (train or validation) of a dataset as a map-style `torch.utils.data.Dataset`.

An item is decoded from its `Source` on access, matched to the network's channels, viewed at the
training resolution (`transforms`) and normalised. Keys are positions (the deterministic eval
view) or `(epoch, position)` pairs, which the training sampler yields: with augmentation on, the
pair seeds that sample's random view, so an epoch's data are the same whatever the worker count,
the rank layout or a resume in the middle of the epoch.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from quadnas.data.sources import Source
from quadnas.data.transforms import Augment, eval_view, match_channels, train_view

Key = int | tuple[int, int]  # a position, or (epoch, position) for an augmented training view


class Split(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images `indices` of `source`, decoded lazily: `(x float32 C,res,res normalised, label int64)` per item."""

    def __init__(
        self,
        source: Source,
        indices: np.ndarray,
        resolution: int,
        channels: int,
        mean: tuple[float, ...] = (),
        std: tuple[float, ...] = (),
        augment: Augment = "none",
        seed: int = 0,
    ):
        self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
        self.resolution, self.channels, self.augment, self.seed = resolution, channels, augment, seed
        self.mean, self.std = mean, std
        self._mean = torch.tensor(mean).view(-1, 1, 1) if mean else None
        self._std = torch.tensor(std).view(-1, 1, 1) if std else None

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> torch.Tensor:
        """Every item's label, read without decoding an image."""
        return torch.from_numpy(self.source.labels[self.indices])

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position = key if isinstance(key, tuple) else (None, key)
        index = int(self.indices[position])
        x = match_channels(self.source.image(index), self.channels)
        if epoch is None or self.augment == "none":
            x = eval_view(x, self.resolution)
        else:
            x = train_view(x, self.resolution, self.augment, np.random.default_rng([self.seed, epoch, index]))
        if self._mean is not None and self._std is not None:
            x = (x - self._mean) / self._std
        return x.contiguous(), torch.tensor(int(self.source.labels[index]))

    def with_view(
        self,
        *,
        augment: Augment | None = None,
        seed: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> Split:
        """The same images with another augmentation, seed or normalisation."""
        return Split(
            self.source,
            self.indices,
            self.resolution,
            self.channels,
            self.mean if mean is None else mean,
            self.std if std is None else std,
            self.augment if augment is None else augment,
            self.seed if seed is None else seed,
        )

    def subset(self, positions: np.ndarray | list[int] | range) -> Split:
        """The items at `positions` of this split, same view."""
        indices = self.indices[np.asarray(positions, dtype=np.int64)]
        return Split(self.source, indices, self.resolution, self.channels, self.mean, self.std, self.augment, self.seed)

    @cached_property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All items' eval views stacked, `(x, y)`, decoded once: for validation subsets and small sets only."""
        if len(self) == 0:
            return torch.empty(0, self.channels, self.resolution, self.resolution), torch.empty(0, dtype=torch.int64)
        items = [self[i] for i in range(len(self))]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def take(
    data: TorchDataset[tuple[torch.Tensor, torch.Tensor]], positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval views and labels of the items at `positions` of any labelled dataset, as two batched tensors."""
    tensors = getattr(data, "tensors", None)
    if tensors is not None and not isinstance(data, Split):
        x, y = tensors[0], tensors[1]
        return x[positions.to(x.device)], y[positions.to(y.device)]
    items = [data[int(i)] for i in positions]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
