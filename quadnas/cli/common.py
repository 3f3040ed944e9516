"""Helpers shared by the commands: the console and argument types."""

from __future__ import annotations

from rich.console import Console

from quadnas.latency.kit_runner import positive_int  # one definition: the kit's runner must stand alone

__all__ = ["console", "err_console", "positive_int"]

console = Console(stderr=False)
err_console = Console(stderr=True)
