"""Known lines that native libraries print on stderr, kept off a user's terminal.

LiteRT's interpreter and converter write log lines from C++ straight to file descriptor 2, with no
setting that turns them off ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on every
interpreter). Within `known_lines_dropped`, descriptor 2 goes to a temporary file; after the block
every line that no pattern matches is written to stderr as it came, so an error message is never lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Lines of LiteRT's runtime and converter stack that say nothing a user acts on.
LITERT_NOISE = (
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^I\d{4} .*\] oneDNN custom operations are on\.",
    r"^W\d{4} .*torch/utils/_pytree\.py:\d+\] .* is an Enum subclass .*register_constant\(\)",
    r"^[\w ]+:+ *\d+%\|.*\| *\d+/\d+ \[",  # the quantizer's progress bars (tqdm: "Running Calibration:: 5%|...")
    r"^ *\r$",  # and the blanks that clear it
)


@contextlib.contextmanager
def known_lines_dropped(patterns: tuple[str, ...] = LITERT_NOISE) -> Iterator[None]:
    """Within, what is written to descriptor 2 is held back; after, the lines no pattern matches go to stderr."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon's): nothing reaches a terminal
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(re.search(p, line) for p in patterns)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
