"""The package version, in one place low modules can import without reaching the package face."""

__version__ = "0.1.0"
