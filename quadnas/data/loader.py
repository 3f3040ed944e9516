"""The training loader: each rank's shard of an epoch, seeded by epoch, resumable mid-epoch.

`EpochSampler` wraps `torch.utils.data.DistributedSampler` (shuffled with `seed + epoch`,
`drop_last`): rank r of w takes every w-th index of one permutation, so the union of the ranks'
s-th batches of `batch / w` images is the one-process run's s-th global batch. It yields
`(epoch, position)` keys, which seed each sample's augmentation (`Split`), and can start part-way
through the epoch for a resume. A `TensorDataset` (tests, benchmarks on prepared tensors) is
indexed batch-wise in the training process, without a DataLoader.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, TensorDataset
from torch.utils.data import Dataset as TorchDataset

from quadnas.data.split import Split

Batch = tuple[torch.Tensor, torch.Tensor]
LabelledSet = TorchDataset[tuple[torch.Tensor, torch.Tensor]]


class EpochSampler(Sampler[tuple[int, int]]):
    """This rank's `(epoch, position)` keys of one shuffled epoch, from sample `start` of the shard on."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def positions(self) -> list[int]:
        """This rank's shard of the epoch, in order (before `start` is skipped)."""
        sampler: DistributedSampler[int] = DistributedSampler(
            _Length(self.n),  # type: ignore[arg-type]  # it needs only the length
            num_replicas=self.world,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(self.epoch)
        return list(sampler)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position in self.positions()[self.start :]:
            yield self.epoch, position

    def __len__(self) -> int:
        return max(0, self.n // self.world - self.start)


class _Length(Sized):
    """What DistributedSampler needs of a dataset: its length."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n


def default_workers(data: Any) -> int:
    """Loader workers: none for images already in RAM (decoding is a copy), else up to 8 of the CPUs."""
    source = getattr(data, "source", None)
    if source is None or source.in_memory:
        return 0
    return min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def epoch_batches(
    data: LabelledSet, sampler: EpochSampler, rank_batch: int, workers: int, device: torch.device
) -> Iterator[Batch]:
    """This rank's batches of `rank_batch` images of the sampler's epoch (the last partial one dropped)."""
    if isinstance(data, TensorDataset):
        x, y = data.tensors[0], data.tensors[1]
        keys = [p for _, p in sampler]
        for start in range(0, len(keys) - rank_batch + 1, rank_batch):
            index = torch.tensor(keys[start : start + rank_batch], device=x.device)
            yield x[index].to(device, non_blocking=True), y[index].to(device, non_blocking=True)
        return
    if not isinstance(data, Split):  # any other map-style dataset: positions, no augmentation key
        data = _Positions(data)
    loader = DataLoader(
        data,
        batch_size=rank_batch,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class _Positions(TorchDataset[tuple[torch.Tensor, torch.Tensor]]):
    """A dataset indexed by `(epoch, position)` keys that ignores the epoch."""

    def __init__(self, data: LabelledSet):
        self.data = data

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.data[key[1]]

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]
