"""The weight-shared supernet and its training.

`Supernet` is imported on first use, so that light modules of the package (the training
recipe, for the command line's start-up) do not pull in torch.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the typed name for the lazy attribute below
    from quadnas.supernet.supernet import Supernet

__all__ = ["Supernet"]


def __getattr__(name: str) -> Any:
    if name == "Supernet":
        from quadnas.supernet.supernet import Supernet

        return Supernet
    raise AttributeError(f"module 'quadnas.supernet' has no attribute '{name}'")
