"""quadnas: hardware-aware NAS for QuadraNet."""

__version__ = "0.1.0"
