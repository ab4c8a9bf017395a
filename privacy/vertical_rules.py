"""Rules of a vertical job: who holds the join key, each feature and the label, and whether DP
may be off.

A vertical federation aligns the same customers across nodes by private set intersection on a
core-sensitive join key, then trains one model on columns that each node holds alone. The rules
here look at every node's parsed policy together with the task's feature and label names (plain
data: no torch, no Flower). :func:`vertical_findings` runs every rule of scope ``vertical``;
``confide.vertical_spec`` raises on its errors at job start and ``confide audit`` shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import PolicyError
from .findings import Finding, Rule, by_id
from .policy import Policy
from .tiers import Tier

__all__ = [
    "RULE_DEFINITIONS",
    "VerticalLayout",
    "feature_holders",
    "vertical_findings",
]

FEDERATION = "(federation)"
_PIPL = "PIPL art. 28/51 and GB/T 35273-2020 §6.3"


@dataclass(frozen=True)
class VerticalLayout:
    """What the vertical rules look at.

    ``nodes``: every node in federation order (the label node among them); ``policies``: node
    name -> its parsed policy; ``features`` and ``label``: the task's names; ``dp_enabled``:
    whether the job trains with DP.
    """

    join_key: str
    label_node: str
    nodes: tuple[str, ...]
    features: tuple[str, ...]
    label: str
    dp_enabled: bool
    policies: Mapping[str, Policy]


def feature_holders(layout: VerticalLayout) -> dict[str, list[str]]:
    """Task feature -> the nodes whose policy lists it with ``role: feature`` (node order)."""
    out: dict[str, list[str]] = {name: [] for name in layout.features}
    for node in layout.nodes:
        policy = layout.policies[node]
        for name in layout.features:
            col = policy.column_for(name)
            if col is not None and col.role == "feature":
                out[name].append(node)
    return out


def _f(rule_id: str, node: str, fld: str | None, message: str) -> Finding:
    return Finding(_RULE_BY_ID[rule_id].severity, rule_id, node, fld, message)


def _join_key_missing(layout: VerticalLayout) -> list[Finding]:
    return [
        _f(
            "VFL-JOIN-KEY-MISSING",
            node,
            layout.join_key,
            f"node '{node}': join key '{layout.join_key}' is not a column of policy "
            f"{layout.policies[node].source}; every node must hold the join key",
        )
        for node in layout.nodes
        if layout.join_key not in layout.policies[node].columns
    ]


def _join_key_tier(layout: VerticalLayout) -> list[Finding]:
    out = []
    for node in layout.nodes:
        col = layout.policies[node].columns.get(layout.join_key)
        if col is not None and col.tier is not Tier.CORE_SENSITIVE:
            out.append(
                _f(
                    "VFL-JOIN-KEY-TIER",
                    node,
                    layout.join_key,
                    f"node '{node}': join key '{layout.join_key}' has tier {col.tier} in policy "
                    f"{layout.policies[node].source}; a join key must be core_sensitive at "
                    "every node",
                )
            )
    return out


def _feature_twice(layout: VerticalLayout) -> list[Finding]:
    return [
        _f(
            "VFL-FEATURE-TWICE",
            FEDERATION,
            name,
            f"task feature '{name}' is held (role feature) by nodes {', '.join(holders)}; in a "
            "vertical job each feature is held by exactly one node",
        )
        for name, holders in feature_holders(layout).items()
        if len(holders) > 1
    ]


def _feature_unheld(layout: VerticalLayout) -> list[Finding]:
    return [
        _f(
            "VFL-FEATURE-UNHELD",
            FEDERATION,
            name,
            f"task feature '{name}' is held (role feature) by no node; in a vertical job each "
            "feature is held by exactly one node",
        )
        for name, holders in feature_holders(layout).items()
        if not holders
    ]


def _holds_label(policy: Policy, label: str) -> bool:
    col = policy.column_for(label)
    return col is not None and col.role == "label"


def _label_at_feature_node(layout: VerticalLayout) -> list[Finding]:
    return [
        _f(
            "VFL-LABEL-AT-FEATURE-NODE",
            node,
            layout.label,
            f"node '{node}' lists the task label '{layout.label}' with role label in policy "
            f"{layout.policies[node].source}, but only label node '{layout.label_node}' may "
            "hold the label",
        )
        for node in layout.nodes
        if node != layout.label_node and _holds_label(layout.policies[node], layout.label)
    ]


def _label_missing(layout: VerticalLayout) -> list[Finding]:
    policy = layout.policies[layout.label_node]
    if _holds_label(policy, layout.label):
        return []
    return [
        _f(
            "VFL-LABEL-MISSING",
            layout.label_node,
            layout.label,
            f"label node '{layout.label_node}' does not list the task label '{layout.label}' "
            f"with role label in policy {policy.source}",
        )
    ]


def _node_without_features(layout: VerticalLayout) -> list[Finding]:
    holders = feature_holders(layout)
    busy = {node for nodes in holders.values() for node in nodes}
    return [
        _f(
            "VFL-NODE-WITHOUT-FEATURES",
            node,
            None,
            f"feature node '{node}' holds none of the task's features (role feature in policy "
            f"{layout.policies[node].source}); it would have nothing to contribute",
        )
        for node in layout.nodes
        if node != layout.label_node and node not in busy
    ]


def _dp_off(layout: VerticalLayout) -> list[Finding]:
    if layout.dp_enabled:
        return []
    return [
        _f(
            "VFL-DP-OFF",
            node,
            "dp.enabled",
            f"DP is off but the policy of node '{node}' ({layout.policies[node].source}) is not "
            "a research policy (dp.require_dp: true); what crosses a boundary in a vertical job "
            "needs DP",
        )
        for node in layout.nodes
        if layout.policies[node].dp.require_dp
    ]


RULE_DEFINITIONS = tuple(
    Rule(_rid, "ERROR", _title, _why, _check, scope="vertical")
    for _rid, _title, _why, _check in (
        (
            "VFL-JOIN-KEY-MISSING",
            "Every node of a vertical job holds the join key",
            "Rows are aligned by private set intersection on the join key; a node without it "
            "cannot take part.",
            _join_key_missing,
        ),
        (
            "VFL-JOIN-KEY-TIER",
            "The join key is core_sensitive at every node",
            "A customer identifier is core identity data: it never leaves a node except blinded "
            f"inside the private set intersection ({_PIPL}).",
            _join_key_tier,
        ),
        (
            "VFL-FEATURE-TWICE",
            "No task feature is held by two nodes",
            "In a vertical job each column comes from one owner; two holders means the same "
            "information is released twice and the review cannot say whose it is.",
            _feature_twice,
        ),
        (
            "VFL-FEATURE-UNHELD",
            "Every task feature is held by one node",
            "A feature no node holds cannot be trained on; the task and the policies disagree.",
            _feature_unheld,
        ),
        (
            "VFL-LABEL-AT-FEATURE-NODE",
            "Only the label node holds the label",
            "The label is protected by label DP on its way to the feature nodes; a feature node "
            "that holds it makes that protection meaningless.",
            _label_at_feature_node,
        ),
        (
            "VFL-LABEL-MISSING",
            "The label node holds the label",
            "The label node trains the top model on its label; without it there is no job.",
            _label_missing,
        ),
        (
            "VFL-NODE-WITHOUT-FEATURES",
            "Every feature node holds at least one task feature",
            "A feature node with no feature would only learn which customers matched "
            "(minimum necessity, PIPL art. 6).",
            _node_without_features,
        ),
        (
            "VFL-DP-OFF",
            "A vertical job trains without DP only when every node's policy is a research policy",
            "Embeddings and label residuals cross organisation boundaries; without DP they leak "
            "row-level information. Only synthetic research policies (dp.require_dp: false) "
            "permit a no-DP reference run.",
            _dp_off,
        ),
    )
)

_RULE_BY_ID = by_id(RULE_DEFINITIONS)


def vertical_findings(layout: VerticalLayout) -> list[Finding]:
    """Run every vertical-scope rule on ``layout``; returns all findings (errors only today).

    ``layout.policies`` must hold a policy for every node in ``layout.nodes``."""
    missing = [node for node in layout.nodes if node not in layout.policies]
    if missing:
        raise PolicyError(
            f"no policy was given for node(s) {', '.join(missing)} (rule POLICY-MISSING); "
            "every node needs a policy file"
        )
    findings: list[Finding] = []
    for rule in RULE_DEFINITIONS:
        findings.extend(rule.check(layout))
    return findings
