"""Helpers shared by the commands: the console, and the argument types (whose home is `quadnas.portable`,
since a kit's command line uses them too)."""

from __future__ import annotations

from rich.console import Console

from quadnas.portable import non_negative_int, positive_float, positive_int

__all__ = ["console", "err_console", "non_negative_int", "positive_float", "positive_int"]

console = Console(stderr=False)
err_console = Console(stderr=True)
