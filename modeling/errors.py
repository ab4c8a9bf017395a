"""Typed errors of the modeling core; each message is one line naming file, field and rule."""

from __future__ import annotations

__all__ = ["BudgetExceeded", "ConfideError", "DataError", "ModelFileError", "TaskSpecError"]


from confide.core.errors import ConfideError


class DataError(ConfideError):
    """A node's data file breaks the data contract (missing file, bad value, bad label)."""


class TaskSpecError(ConfideError):
    """The shared task spec (label, features, bounds, categories) is malformed."""


class BudgetExceeded(ConfideError):
    """A round or run would spend more privacy budget than the node allows."""


class ModelFileError(ConfideError):
    """A saved model file is missing, unreadable or does not match the task spec."""
