"""Task types in one place: parse a task mapping by its ``type`` and encode its targets.

``binary`` (the default) is :mod:`confide.modeling.task_spec`; ``survival`` is
:mod:`confide.modeling.survival_spec` with targets from :mod:`confide.modeling.survival_data`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confide.modeling.errors import TaskSpecError
from confide.modeling.survival_spec import SurvivalTaskSpec, parse_survival_spec
from confide.modeling.task_spec import TASK_TYPES, TaskSpec, parse_task_spec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["encode_targets", "parse_task"]


def parse_task(raw: Mapping[str, Any], source: str = "task spec") -> TaskSpec:
    """Validate a task mapping of any type (``type``: binary by default, or survival)."""
    kind = raw.get("type", "binary") if isinstance(raw, Mapping) else "binary"
    if kind not in TASK_TYPES:
        raise TaskSpecError(f"{source}: type must be binary or survival (rule: task spec)")
    if kind == "survival":
        return parse_survival_spec(raw, source)
    return parse_task_spec(raw, source)


def encode_targets(frame: pd.DataFrame, task: TaskSpec, source: str) -> np.ndarray:
    """A node's encoded targets: binary 1.0/0.0 labels, or survival (duration, event) rows.
    (pandas is imported here, so parsing a job stays light.)"""
    from confide.modeling.encoding import encode_labels
    from confide.modeling.survival_data import encode_survival_targets

    if isinstance(task, SurvivalTaskSpec):
        return encode_survival_targets(frame, task, source)
    return encode_labels(frame, task, source)
