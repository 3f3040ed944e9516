"""The weight-shared supernet and its training."""

from quadnas.supernet.supernet import Supernet

__all__ = ["Supernet"]
