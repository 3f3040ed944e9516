"""The torch device that trains and evaluates supernets: 'cpu', 'cuda' or 'cuda:N'."""

from __future__ import annotations

import torch

from quadnas.errors import QuadnasError


def torch_device(name: str | torch.device, flag: str = "--train-device") -> torch.device:
    """`name` as a torch device, or a one-line QuadnasError (naming `flag`) if it is not cpu or a CUDA GPU here."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise QuadnasError(f"{flag} '{name}' is not supported: use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise QuadnasError(f"{flag} {name} needs CUDA, which is not available here: use {flag} cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise QuadnasError(f"{flag} {name}: this machine has {count} GPU(s) (cuda:0 to cuda:{count - 1})")
    return device
