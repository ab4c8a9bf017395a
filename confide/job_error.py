"""The error of a config that does not describe a valid job (shared by ``confide.job`` and the
modules it validates with, such as ``confide.vertical_spec``, without an import cycle)."""

from __future__ import annotations

from confide.core.errors import ConfideError

__all__ = ["JobError"]


class JobError(ConfideError):
    """The composed config does not describe a valid job."""
