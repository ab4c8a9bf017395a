"""The vertical part of a job: join key, label node, PSI and split-learning DP settings.

A federation file says ``kind: vertical`` (the default is ``horizontal``) when its nodes hold
different columns about overlapping customers (docs/vertical.md). :func:`parse_vertical` reads
``config['federation']`` into a :class:`VerticalSpec` (``None`` for a horizontal job);
``confide.job.parse_job`` puts it on ``Job.vertical``. What needs the nodes' policies (who holds
which feature, the join key's tier, where the label is, DP off) is
:func:`check_feature_ownership`, run where the policies are readable (the simulation driver, the
review); the rules themselves are :mod:`confide.privacy.vertical_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from confide.job_error import JobError
from confide.modeling.task_spec import TaskSpec
from confide.modeling.training_settings import DPSettings
from confide.privacy.policy import Policy
from confide.privacy.vertical_rules import VerticalLayout, feature_holders, vertical_findings

__all__ = [
    "FEDERATION_KINDS",
    "PROTOCOLS",
    "REVEAL_TO",
    "VerticalSpec",
    "VerticalSpecError",
    "check_feature_ownership",
    "federation_kind",
    "parse_vertical",
    "vertical_layout",
]

FEDERATION_KINDS = ("horizontal", "vertical")
REVEAL_TO = ("label_node", "all")
#: ``secure_linear`` (default): a logistic model from DP sufficient statistics whose cross terms
#: are computed by a dealer-assisted secure product (one release per node, no per-row value
#: crosses); ``split_learning``: one round of split learning with a per-row label-DP release.
PROTOCOLS = ("secure_linear", "split_learning")

_VERTICAL_KEYS = ("kind", "join_key", "label_node", "psi", "vertical")
_HORIZONTAL_KEYS = ("source", "partition")
_PSI_KEYS = ("reveal_to", "pad_to", "min_overlap")
_DP_KEYS = ("label_dp_epsilon", "embedding_dp_epsilon", "embedding_clip")
_LINEAR_KEYS = ("label_row_clip", "feature_row_clip")
_BLOCK_KEYS = ("protocol", *_DP_KEYS, *_LINEAR_KEYS)
_RULE = "vertical federation"


class VerticalSpecError(JobError):
    """A vertical federation file, or the policies of its nodes, do not describe a valid job."""


@dataclass(frozen=True)
class VerticalSpec:
    """The vertical settings of a job (validated; docs/vertical.md).

    ``feature_nodes``: every node but the label node, in federation order. ``features_by_node``:
    node -> the task features it holds, in task order; empty until
    :func:`check_feature_ownership` has read the nodes' policies.
    """

    join_key: str
    label_node: str
    feature_nodes: tuple[str, ...]
    label_dp_epsilon: float
    embedding_dp_epsilon: float
    reveal_to: str = "label_node"
    pad_to: int | None = None
    min_overlap: int = 100
    embedding_clip: float = 1.0
    features_by_node: dict[str, tuple[str, ...]] = field(default_factory=dict)
    protocol: str = "split_learning"
    label_row_clip: float = 3.0
    feature_row_clip: float = 3.0

    @property
    def secure_linear(self) -> bool:
        """Whether the job trains with the secure linear protocol (else split learning)."""
        return self.protocol == "secure_linear"

    @property
    def nodes(self) -> tuple[str, ...]:
        """The label node, then the feature nodes."""
        return (self.label_node, *self.feature_nodes)

    def node_features(self, node: str) -> tuple[str, ...]:
        """The task features ``node`` holds (VerticalSpecError before ownership is checked)."""
        if not self.features_by_node:
            raise VerticalSpecError(
                "vertical job: feature ownership has not been checked against the nodes' "
                f"policies yet (rule: {_RULE})"
            )
        if node not in self.features_by_node:
            raise VerticalSpecError(
                f"vertical job: node '{node}' is not part of the federation (rule: {_RULE})"
            )
        return self.features_by_node[node]


def _err(where: str, rule: str) -> VerticalSpecError:
    return VerticalSpecError(f"config federation.{where} (rule: {rule})")


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _err(f"{where}: must be a mapping", _RULE)
    unknown = sorted(str(k) for k in raw if k not in (_PSI_KEYS if where == "psi" else _BLOCK_KEYS))
    if unknown:
        raise _err(f"{where}: unknown keys {unknown}", _RULE)
    return raw


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(f"{where}: must be a number", _RULE)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise _err(f"{where}: must be a finite number > 0", _RULE)
    return number


def _whole(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(f"{where}: must be a whole number", _RULE)
    if value < minimum or value.bit_length() > 63:
        raise _err(f"{where}: must be a whole number >= {minimum}", _RULE)
    return value


def federation_kind(federation: Mapping[str, Any]) -> str:
    """``horizontal`` (default) or ``vertical``; anything else is a VerticalSpecError."""
    kind = federation.get("kind", "horizontal")
    if kind is None:
        kind = "horizontal"
    if kind not in FEDERATION_KINDS:
        raise _err(f"kind: must be one of {', '.join(FEDERATION_KINDS)}", "federation kind")
    return str(kind)


def _refuse_horizontal_only(config: Mapping[str, Any]) -> None:
    federation = config.get("federation") or {}
    for key in _HORIZONTAL_KEYS:
        if federation.get(key) is not None:
            raise _err(
                f"{key}: a vertical federation lists its nodes; '{key}' (one data set cut into "
                "nodes) is for horizontal federations only",
                _RULE,
            )
    for index, node in enumerate(federation.get("nodes") or []):
        if isinstance(node, Mapping) and node.get("part") is not None:
            raise _err(f"nodes[{index}].part: is for horizontal partitioned federations", _RULE)
    secure = config.get("secure") or {}
    for block, what in (("secagg", "secure aggregation"), ("client_dp", "client-level DP")):
        if isinstance(secure.get(block), Mapping) and secure[block].get("enabled") is True:
            raise VerticalSpecError(
                f"config secure.{block}.enabled: {what} protects averaged model updates of a "
                f"horizontal job; a vertical job protects what crosses with its own DP (rule: "
                f"{_RULE})"
            )
    dropout = (config.get("simulation") or {}).get("dropout_rate") or 0
    if not isinstance(dropout, bool) and isinstance(dropout, int | float) and dropout > 0:
        raise VerticalSpecError(
            "config simulation.dropout_rate: must be 0 for a vertical job (every node holds "
            f"columns the model needs) (rule: {_RULE})"
        )


def parse_vertical(
    config: Mapping[str, Any], node_names: Sequence[str], dp: DPSettings
) -> VerticalSpec | None:
    """``config['federation']`` as a :class:`VerticalSpec`, or ``None`` for a horizontal job.

    ``node_names``: the parsed nodes in federation order; ``dp``: the job's parsed DP settings
    (each vertical epsilon must be below ``dp.epsilon`` when DP is on: the rest of a node's
    epsilon goes to its own DP-SGD model). Horizontal-only settings are refused on a vertical
    job and the vertical keys on a horizontal one."""
    federation = config.get("federation") or {}
    if not isinstance(federation, Mapping):
        raise _err("must be a mapping", "federation")
    if federation_kind(federation) == "horizontal":
        extra = [k for k in _VERTICAL_KEYS[1:] if federation.get(k) is not None]
        if extra:
            raise _err(
                f"{extra[0]}: is a vertical federation key; set kind: vertical or remove it",
                "federation kind",
            )
        return None
    _refuse_horizontal_only(config)
    names = list(node_names)
    if len(names) < 2:
        raise _err("nodes: a vertical federation needs at least 2 nodes", _RULE)
    join_key = federation.get("join_key")
    if not isinstance(join_key, str) or not join_key.strip() or join_key != join_key.strip():
        raise _err(
            "join_key: must name the column every node holds (non-empty, no surrounding spaces)",
            _RULE,
        )
    label_node = federation.get("label_node")
    if not isinstance(label_node, str) or label_node not in names:
        raise _err(f"label_node: must name one of the nodes ({', '.join(names)})", _RULE)
    psi = _mapping(federation.get("psi"), "psi")
    reveal_to = psi.get("reveal_to", "label_node")
    if reveal_to not in REVEAL_TO:
        raise _err(f"psi.reveal_to: must be one of {', '.join(REVEAL_TO)}", _RULE)
    pad_to = psi.get("pad_to")
    if pad_to is not None:
        pad_to = _whole(pad_to, "psi.pad_to", 1)
    min_overlap = _whole(psi.get("min_overlap", 100), "psi.min_overlap", 1)
    block = _mapping(federation.get("vertical"), "vertical")
    protocol = block.get("protocol", "secure_linear")
    if protocol not in PROTOCOLS:
        raise _err(f"vertical.protocol: must be one of {', '.join(PROTOCOLS)}", _RULE)
    common = dict(
        join_key=join_key,
        label_node=label_node,
        feature_nodes=tuple(n for n in names if n != label_node),
        reveal_to=str(reveal_to),
        pad_to=pad_to,
        min_overlap=min_overlap,
        protocol=str(protocol),
    )
    if protocol == "secure_linear":
        return _secure_linear_spec(block, common, config)
    extra = [k for k in _LINEAR_KEYS if k in block]
    if extra:
        raise _err(f"vertical.{extra[0]}: is a setting of protocol secure_linear", _RULE)
    epsilons = {}
    for key in _DP_KEYS[:2]:
        if key not in block:
            raise _err(f"vertical.{key}: is required", _RULE)
        epsilons[key] = _positive(block[key], f"vertical.{key}")
        if dp.enabled and not epsilons[key] < dp.epsilon:
            raise _err(
                f"vertical.{key}: must be below dp.epsilon={dp.epsilon:g} (the rest of each "
                "node's epsilon trains its own model)",
                "vertical DP budget",
            )
    clip = _positive(block.get("embedding_clip", 1.0), "vertical.embedding_clip")
    return VerticalSpec(
        **common,
        label_dp_epsilon=epsilons["label_dp_epsilon"],
        embedding_dp_epsilon=epsilons["embedding_dp_epsilon"],
        embedding_clip=clip,
    )


def _secure_linear_spec(
    block: Mapping[str, Any], common: dict[str, Any], config: Mapping[str, Any]
) -> VerticalSpec:
    """The secure linear protocol: each node spends its whole dp.epsilon on one release of
    sufficient statistics; it takes exactly one feature node and trains a logistic model."""
    extra = [k for k in _DP_KEYS if k in block]
    if extra:
        raise _err(
            f"vertical.{extra[0]}: is a setting of protocol split_learning (secure_linear spends "
            "each node's whole dp.epsilon on one release of sufficient statistics)",
            _RULE,
        )
    if len(common["feature_nodes"]) != 1:
        raise _err(
            "vertical.protocol: secure_linear takes exactly one feature node besides the label "
            "node; use protocol split_learning for more",
            _RULE,
        )
    model = config.get("model") or "logreg"
    name = model.get("name") if isinstance(model, Mapping) else model
    if name != "logreg":
        raise _err(
            f"vertical.protocol: secure_linear trains a logistic model; task model '{name}' "
            "needs protocol split_learning",
            _RULE,
        )
    clips = {k: _positive(block.get(k, 3.0), f"vertical.{k}") for k in _LINEAR_KEYS}
    return VerticalSpec(**common, label_dp_epsilon=0.0, embedding_dp_epsilon=0.0, **clips)


def vertical_layout(
    spec: VerticalSpec, task: TaskSpec, policies: Mapping[str, Policy], *, dp_enabled: bool
) -> VerticalLayout:
    """What :mod:`confide.privacy.vertical_rules` checks, from the spec, task and policies."""
    missing = [n for n in spec.nodes if n not in policies]
    if missing:
        raise VerticalSpecError(
            f"vertical job: no policy given for node(s) {', '.join(missing)} (rule: policy per "
            "node)"
        )
    return VerticalLayout(
        join_key=spec.join_key,
        label_node=spec.label_node,
        nodes=spec.nodes,
        features=tuple(task.feature_names),
        label=task.label.name,
        dp_enabled=dp_enabled,
        policies=policies,
    )


def check_feature_ownership(
    spec: VerticalSpec,
    task: TaskSpec,
    policies: Mapping[str, Policy],
    source: str,
    *,
    dp_enabled: bool = True,
) -> VerticalSpec:
    """Check every node's policy against the vertical job; returns ``spec`` with
    ``features_by_node`` filled.

    Every task feature is held (role feature) by exactly one node, the label only by the label
    node, the join key is a core_sensitive column at every node, each feature node holds a
    feature, and DP is off only when every policy allows it (rules ``VFL-*``). Any violation is
    one VerticalSpecError line starting with ``source`` and naming every rule id broken."""
    layout = vertical_layout(spec, task, policies, dp_enabled=dp_enabled)
    errors = [f for f in vertical_findings(layout) if f.severity == "ERROR"]
    if errors:
        raise VerticalSpecError(
            f"{source}: vertical job refused: "
            + "; ".join(f"{f.message} (rule {f.rule_id})" for f in errors)
        )
    holders = feature_holders(layout)
    by_node = {
        node: tuple(name for name in layout.features if holders[name] == [node])
        for node in spec.nodes
    }
    return replace(spec, features_by_node=by_node)
