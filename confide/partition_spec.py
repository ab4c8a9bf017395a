"""The ``federation.partition`` block of a job: how one data set is split into simulated nodes.

Only the validated spec lives here (the job needs it to name the nodes);
:mod:`confide.simulations.partitioning` does the split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confide.core.errors import ConfideError

__all__ = ["SCHEMES", "PartitionError", "PartitionSpec", "parse_partition"]

SCHEMES = ("iid", "column", "dirichlet", "quantity", "feature")
_KEYS = {"scheme", "num_nodes", "alpha", "column", "min_rows", "mix", "name_prefix"}


class PartitionError(ConfideError):
    """A partition block is malformed or cannot be satisfied by the data."""


@dataclass(frozen=True)
class PartitionSpec:
    """How one data set is split into simulated nodes."""

    scheme: str
    num_nodes: int
    alpha: float = 0.5
    column: str | None = None
    min_rows: int = 50
    mix: float = 0.1
    name_prefix: str = "node_"

    def node_names(self) -> list[str]:
        """``node_00``, ``node_01``, ... (zero-padded so they sort in order)."""
        width = max(2, len(str(self.num_nodes - 1)))
        return [f"{self.name_prefix}{i:0{width}d}" for i in range(self.num_nodes)]


def parse_partition(raw: Any, where: str = "federation.partition") -> PartitionSpec:
    """Validate a ``partition`` config block."""
    if not isinstance(raw, Mapping):
        raise PartitionError(f"{where}: must be a mapping (rule: partition)")
    unknown = set(raw) - _KEYS
    if unknown:
        raise PartitionError(f"{where}: unknown keys {sorted(unknown)} (rule: partition)")
    scheme = raw.get("scheme")
    if scheme not in SCHEMES:
        raise PartitionError(
            f"{where}.scheme must be one of {', '.join(SCHEMES)} (rule: partition)"
        )
    try:
        spec = PartitionSpec(
            scheme=str(scheme),
            num_nodes=int(raw["num_nodes"]),
            alpha=float(raw.get("alpha") if raw.get("alpha") is not None else 0.5),
            column=str(raw["column"]) if raw.get("column") else None,
            min_rows=int(raw.get("min_rows") if raw.get("min_rows") is not None else 50),
            mix=float(raw.get("mix") if raw.get("mix") is not None else 0.1),
            name_prefix=str(raw.get("name_prefix") or "node_"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PartitionError(
            f"{where}: num_nodes is required and alpha, min_rows, mix must be numbers "
            "(rule: partition)"
        ) from exc
    if spec.num_nodes < 1:
        raise PartitionError(f"{where}.num_nodes must be >= 1 (rule: partition)")
    if not spec.alpha > 0 or not math.isfinite(spec.alpha):
        raise PartitionError(f"{where}.alpha must be > 0 (rule: partition)")
    if spec.min_rows < 1:
        raise PartitionError(f"{where}.min_rows must be >= 1 (rule: partition)")
    if not 0 <= spec.mix <= 1:
        raise PartitionError(f"{where}.mix must be in [0, 1] (rule: partition)")
    if spec.scheme in {"column", "feature"} and not spec.column:
        raise PartitionError(f"{where}: scheme '{spec.scheme}' needs 'column' (rule: partition)")
    if not spec.name_prefix.replace("_", "").isalnum():
        raise PartitionError(f"{where}.name_prefix must be letters, digits or _ (rule: partition)")
    return spec
