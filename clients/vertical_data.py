"""Node-level data checks of a vertical job, run before a node reads or writes anything else.

A vertical node needs its join key column (for the private set intersection) and the task
features it holds. :func:`check_vertical_columns` refuses, in one line naming the node, the
column and the rule and never a value, a data set that lacks either. Empty and duplicated join
keys are counted (never shown) by ``confide.privacy.psi.normalise_ids``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from confide.modeling.errors import DataError
from confide.privacy.policy import Policy
from confide.vertical_spec import VerticalSpec

__all__ = ["VerticalDataError", "check_vertical_columns"]


class VerticalDataError(DataError):
    """A vertical node's data lacks its join key or one of the features it holds."""


def _column(name: str, policy: Policy | None) -> str:
    """The data column feeding task name ``name`` (through the policy's ``maps_to``)."""
    if policy is None:
        return name
    rule = policy.column_for(name)
    return rule.name if rule is not None else name


def check_vertical_columns(
    frame_columns: Iterable[str],
    spec: VerticalSpec,
    node: str,
    source: str,
    *,
    policy: Policy | None = None,
    features: Sequence[str] | None = None,
) -> None:
    """Refuse ``node``'s data (``frame_columns``: its header) when the join key or a feature
    it holds is missing; returns nothing and writes nothing.

    The features checked are ``features`` when given, else ``spec.features_by_node[node]``
    once :func:`confide.vertical_spec.check_feature_ownership` has filled it (else only the
    join key is checked). With ``policy``, task names map to data columns through
    ``maps_to``; without it the header holds task names. Raises :class:`VerticalDataError`."""
    if node not in spec.nodes:
        raise VerticalDataError(
            f"{source}: node '{node}' is not part of the vertical federation (rule: vertical "
            "federation)"
        )
    present = {str(c) for c in frame_columns}
    if spec.join_key not in present:
        raise VerticalDataError(
            f"{source}: node '{node}': join key column '{spec.join_key}' is missing from the "
            "data (rule VFL-JOIN-KEY-MISSING)"
        )
    if features is None:
        features = spec.features_by_node.get(node, ()) if spec.features_by_node else ()
    missing = [name for name in features if _column(name, policy) not in present]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise VerticalDataError(
            f"{source}: node '{node}': {len(missing)} task feature(s) this node holds are "
            f"missing from the data: {names} (rule: schema)"
        )
