"""User-facing errors: shown as one line, exit code 2."""


class QuadnasError(Exception):
    """A mistake the user can fix; the message names the problem and the fix."""
