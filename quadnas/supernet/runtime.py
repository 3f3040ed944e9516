"""Process-level training settings: ranks, the process group, the device of each rank, determinism, signals."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import torch
import torch.distributed as dist

from quadnas.accelerator import torch_device
from quadnas.errors import QuadnasError

CUBLAS_WORKSPACE = "CUBLAS_WORKSPACE_CONFIG"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def world_rank() -> tuple[int, int]:
    """`(rank, world_size)` from torchrun's environment (`(0, 1)` when run alone)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed): the process that writes and reports."""
    return world_rank()[0] == 0


def rank_device(device: str | torch.device) -> torch.device:
    """This rank's device: `device` alone, `cuda:LOCAL_RANK` for CUDA under torchrun (one GPU per rank)."""
    device = torch_device(device)
    if device.type != "cuda" or world_rank()[1] == 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if local >= count:
        raise QuadnasError(
            f"local rank {local} has no GPU: this node has {count} GPU(s); start at most "
            f"--nproc_per_node {count} processes per node"
        )
    return torch.device("cuda", local)


@contextmanager
def process_group(device: torch.device) -> Iterator[None]:
    """A process group when launched by torchrun with several processes: NCCL on CUDA, gloo on CPU."""
    _, world = world_rank()
    created = world > 1 and not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


@contextmanager
def numerics(deterministic: bool) -> Iterator[None]:
    """Deterministic algorithms (and a cuBLAS workspace) when asked, else cudnn.benchmark; restored afterwards.

    cuBLAS reads its workspace setting when the process first uses it, so a first use inside
    training is deterministic. On the CPU training is bit-reproducible either way.
    """
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    workspace = os.environ.get(CUBLAS_WORKSPACE)
    if deterministic:
        os.environ.setdefault(CUBLAS_WORKSPACE, ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        if workspace is None:
            os.environ.pop(CUBLAS_WORKSPACE, None)


class StopRequest:
    """Set by SIGTERM or SIGUSR1 while `catching` is active; training checks it between steps."""

    def __init__(self) -> None:
        self.signal_number = 0

    def __bool__(self) -> bool:
        return self.signal_number != 0

    def _handle(self, number: int, frame: FrameType | None) -> None:
        self.signal_number = number

    @contextmanager
    def catching(self) -> Iterator[StopRequest]:
        """Install the handlers (main thread only; elsewhere signals keep their default) and restore them."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def agreed(self) -> int:
        """The signal any rank received (0: none), the same on every rank: all stop at the same step."""
        if world_rank()[1] == 1 or not dist.is_initialized():
            return self.signal_number
        flag = torch.tensor([self.signal_number], dtype=torch.int64)
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())
