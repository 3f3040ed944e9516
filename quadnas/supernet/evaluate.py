"""Accuracy of a subnet with the weights it inherits from the supernet, cached per arch.

The network has LayerNorm only (no BatchNorm), so inherited weights need no
statistics recalibration before evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import TensorDataset

from quadnas.data.split import Split
from quadnas.space import Arch
from quadnas.supernet.supernet import Supernet

if TYPE_CHECKING:
    from quadnas.data import Dataset


class Evaluator:
    """Top-1 validation accuracy of archs of one supernet on one dataset."""

    def __init__(self, supernet: Supernet, dataset: Dataset, batch_size: int = 512):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.supernet, self.dataset, self.batch_size = supernet, dataset, batch_size
        self.cache: dict[Arch, float] = {}
        self._val: tuple[torch.Tensor, torch.Tensor] | None = None  # the split on the model's device

    def accuracy(self, arch: Arch) -> float:
        """Fraction of validation images `arch` classifies correctly (0..1)."""
        if arch not in self.cache:
            self.cache[arch] = self._measure(arch)
        return self.cache[arch]

    def _validation_split(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels on `device`, copied there once."""
        if self._val is None or self._val[0].device != device:
            x, y = self.dataset.val.tensors[:2]
            self._val = (x.to(device), y.to(device))
        return self._val

    def _measure(self, arch: Arch) -> float:
        device = next(self.supernet.parameters()).device
        x, y = self._validation_split(device)
        if len(y) == 0:
            raise ValueError(f"dataset '{self.dataset.name}' has no validation images")
        was_training = self.supernet.training
        self.supernet.eval()
        try:
            return top1(lambda images: self.supernet(images, arch), x, y, self.batch_size)
        finally:
            self.supernet.train(was_training)


def top1(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Fraction of images in `x` whose arg-max logit from `forward` is their label in `y`."""
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), batch_size):
            logits = forward(x[start : start + batch_size])
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
    return correct / len(y)


def accuracy(model: nn.Module, data: TensorDataset | Split, batch_size: int = 512) -> float:
    """Top-1 accuracy of `model` (left in eval mode, on its device) on a labelled tensor set or a small split."""
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in data.tensors[:2])
    return top1(model.eval(), x, y, batch_size)
