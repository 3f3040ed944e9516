"""The one optimiser and schedule of every training: AdamW without decay on norms and biases, warm-up then cosine."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, exempt: str | None = None) -> list[dict[str, Any]]:
    """Decay weights and layer scales (ndim > 1), not biases, norms or parameters whose name contains `exempt`."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        (decay if p.ndim > 1 and not (exempt and exempt in name) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor per step: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, warmup_steps: int, total_steps: int, exempt: str | None = None
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `param_groups` and its per-step warm-up + cosine schedule."""
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay, exempt), lr=lr, fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(min(warmup_steps, total_steps), total_steps))
    return optimizer, scheduler
