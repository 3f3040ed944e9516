"""Whether a rebuilt estimated table says what the file on disk says, up to host floating-point noise.

Text and integers must match exactly; other numbers may differ by one unit in their last written
digit (a rounding that a few ULPs of another host's arithmetic flipped).
"""

from __future__ import annotations

import re

#: a number written in a table: not part of a word (k5e4, R2, a hex fingerprint)
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _last_digit(token: str) -> float:
    """One unit in the last digit written: '12.46' -> 0.01, '1.5e-05' -> 1e-06, '300' -> 1."""
    mantissa, _, exponent = token.lower().partition("e")
    return 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def _same_line(a: str, b: str) -> bool:
    """Whether two lines say the same up to one unit in the last digit of their non-integer numbers."""
    if _NUMBER.split(a) != _NUMBER.split(b):
        return False  # the text between the numbers
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        if x == y:
            continue
        if not any(c in x + y for c in ".eE"):
            return False  # integers (shapes, counts, years) exactly
        if abs(float(x) - float(y)) > min(_last_digit(x), _last_digit(y)) * (1 + 1e-9):
            return False
    return True


def text_differences(old: str, new: str) -> list[str]:
    """Where `new` differs from `old` by more than host floating point explains: text and integers
    exactly, other numbers by at most one unit in their last written digit (a flipped rounding)."""
    old_lines, new_lines = old.splitlines(), new.splitlines()
    if len(old_lines) != len(new_lines):
        return [f"{len(old_lines)} lines -> {len(new_lines)}"]
    return [
        f"line {i}: {_around(a, b)}"
        for i, (a, b) in enumerate(zip(old_lines, new_lines), 1)
        if a != b and not _same_line(a, b)
    ]


def _around(a: str, b: str) -> str:
    """'...old...' -> '...new...' around the first character where two lines differ."""
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    start = max(0, first - 40)
    return f"{a[start : first + 40]!r} -> {b[start : first + 40]!r}"
