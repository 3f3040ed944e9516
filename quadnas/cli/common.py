"""Helpers shared by the commands: the console and argument types."""

from __future__ import annotations

import argparse

from rich.console import Console

__all__ = ["console", "err_console", "positive_int"]

console = Console(stderr=False)
err_console = Console(stderr=True)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (the kit's standalone runner has its own copy)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
