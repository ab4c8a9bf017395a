"""Turn SIGTERM (and SIGINT) into an exception while a command writes a file.

Python's default SIGTERM action ends the process at once, so an atomic writer never gets to
remove its temporary file: a killed ``privacy decrypt`` would leave plaintext behind. Inside
:func:`terminate_as_exception` both signals raise :class:`Terminated`, which unwinds through
``confide.core.files.atomic_writer`` (removing its temporary file) like any other exception.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "terminate_as_exception"]


class Terminated(BaseException):
    """The process received SIGTERM or SIGINT; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The conventional shell status for death by this signal (128 + number)."""
        return 128 + self.signum


def _raise(signum: int, _frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
