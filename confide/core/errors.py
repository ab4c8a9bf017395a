"""The root of Confide's typed, user-facing errors.

Every package's error types derive from :class:`ConfideError`, so the command line can print any
expected failure as one line (file, field, rule) and exit non-zero, without a traceback.
"""

from __future__ import annotations

__all__ = ["ConfideError"]


class ConfideError(Exception):
    """Base class of Confide's expected, user-facing errors (printed as one line).

    The message is normalised to a single line; it names the file, the field and the rule that
    was broken, and never carries raw data values or key material.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))
