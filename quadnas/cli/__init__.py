"""The `quadnas` command line: parse, call the library, print. No logic of its own.

Each module of this package that defines `register(subparsers)` adds one command;
`register` sets `func` on its parser to a function `(args) -> int | None`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import sys

from rich.markup import escape

from quadnas._version import __version__
from quadnas.cli.common import err_console
from quadnas.cli.progress import log_to
from quadnas.errors import QuadnasError, Stopped

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quadnas", description="Hardware-aware NAS for QuadraNet.")
    parser.add_argument("--version", action="version", version=f"quadnas {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        dest="log_level",
        action="store_const",
        const=logging.WARNING,
        help="no progress bars or notes: only warnings and errors on stderr",
    )
    loudness.add_argument(
        "-v", "--verbose", dest="log_level", action="store_const", const=logging.DEBUG, help="debug messages too"
    )
    parser.set_defaults(log_level=logging.INFO)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


LATENCY_FLAGS = ("--budget",)
SHORTEST_PREFIX = 5  # `--bud`: argparse reads unique prefixes, and no other flag of any command starts so
_NUMBER = re.compile(r"-?[0-9]*\.?[0-9]+(?:e[-+]?\d+)?", re.IGNORECASE)
_UNIT = re.compile(r"ms|s|us|µs|μs", re.IGNORECASE)


def join_latency_words(argv: list[str]) -> list[str]:
    """`--budget -5ms` and `--budget 30 ms` (or `--budg 30 ms`) as argparse cannot read them: `--budget=-5ms`,
    `--budget=30ms`.

    argparse takes `-5ms` for an option and `ms` for a stray argument; joined, the budget
    parser reads the value or gives its own one-line error (a negative budget).
    """
    out, i = [], 0
    while i < len(argv):
        word, i = argv[i], i + 1
        flag = next((f for f in LATENCY_FLAGS if len(word) >= SHORTEST_PREFIX and f.startswith(word)), None)
        if flag and i < len(argv) and not argv[i].startswith("--"):
            value, i = argv[i], i + 1
            if i < len(argv) and _NUMBER.fullmatch(value) and _UNIT.fullmatch(argv[i]):
                value, i = value + argv[i], i + 1
            word = f"{flag}={value}"
        out.append(word)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(join_latency_words(sys.argv[1:] if argv is None else argv))
    first_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 reports progress
    try:
        with log_to(err_console, args.log_level if first_rank else max(args.log_level, logging.WARNING)):
            return args.func(args) or 0
    except Stopped as e:
        err_console.print(f"[yellow]stopped:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 128 + e.signal_number
    except QuadnasError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished work is saved; rerun the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
