"""Reading what nodes sent: every noisy vector is checked before the coordinator uses it.

A release or k-means step is data from another organisation: each component must be a mapping
with a list of finite numbers of the length the spec implies and a positive, finite Laplace
scale. Anything else is refused in one line naming the node and the field (rule
ANALYSIS-RELEASE); the coordinator never takes a length, a group key or a bin from a release.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .prepare import AnalysisDataError

__all__ = ["component"]


def component(
    node: str, release: Any, path: tuple[str, ...], length: int
) -> tuple[np.ndarray, float]:
    """The values (float array of ``length``) and the scale at ``path`` of one node's release."""
    where = ".".join(path)
    item = release
    for key in path:
        if not isinstance(item, dict) or key not in item:
            raise AnalysisDataError(
                f"release of node '{node}': field '{where}' is missing (rule ANALYSIS-RELEASE)"
            )
        item = item[key]
    values = item.get("values") if isinstance(item, dict) else None
    scale = item.get("scale") if isinstance(item, dict) else None
    ok = isinstance(values, list) and len(values) == length
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ok = ok and isinstance(scale, int | float) and not isinstance(scale, bool)
    arr = np.asarray(values if ok else [], dtype=np.float64)
    if not ok or not np.isfinite(arr).all() or not (math.isfinite(scale) and scale > 0):
        raise AnalysisDataError(
            f"release of node '{node}': field '{where}' must hold {length} finite values and a "
            "positive finite scale (rule ANALYSIS-RELEASE)"
        )
    return arr, float(scale)
