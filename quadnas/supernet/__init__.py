"""The weight-shared supernet and its training.

`Supernet` is imported on first use, so that light modules of the package (the training
recipe, for the command line's start-up) do not pull in torch.
"""

__all__ = ["Supernet"]


def __getattr__(name: str):
    if name == "Supernet":
        from quadnas.supernet.supernet import Supernet

        return Supernet
    raise AttributeError(f"module 'quadnas.supernet' has no attribute '{name}'")
