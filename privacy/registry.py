"""The single rule registry shared by policy parsing, job checks, PII scans and audits.

It is built statically: every module that defines rules lists them in its ``RULE_DEFINITIONS``
tuple, and :data:`RULES` is assembled here, once, from the explicit list
:data:`DEFINING_MODULES` (no module registers anything as a side effect of being imported).

Each :class:`Rule` has a ``scope``:

* ``"parse"``  - enforced by the policy parser itself (``check`` is None);
* ``"column"`` - ``check(column_rule) -> str | None`` run on every policy column at parse time;
* ``"policy"`` - ``check(policy) -> str | None`` run on the whole parsed policy;
* ``"job"``    - ``check(policy, usage) -> list[Finding]`` run by ``evaluate_job``;
* ``"scan"``   - produced by ``privacy.pii_scan`` (``check`` is None);
* ``"transform"`` / ``"keys"`` - refusals raised by transforms and keyrings (``check`` is None).
* ``"config"`` - ``check(review) -> list[Finding]`` run by ``privacy.review_rules.evaluate_config``
  on a composed config (plain dicts): transport, secrets, overrides, node files.
* ``"analysis"`` - a DP analysis on one node (``check`` is None): column findings come from
  ``confide.analytics.policy_check``, budget findings from ``privacy.analysis_rules``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from . import (
    analysis_rules,
    encryption,
    generalize,
    keys,
    pii_scan,
    policy,
    review_rules,
    rules,
    values,
    vertical_rules,
)
from .findings import SCOPES, SEVERITIES, Finding, Rule, by_id

__all__ = [
    "DEFINING_MODULES",
    "RULES",
    "SCOPES",
    "SEVERITIES",
    "Finding",
    "Rule",
    "build_registry",
    "rule_catalogue_document",
    "rules_for",
]

# The modules that define rules, in catalogue order.
DEFINING_MODULES = (
    keys,
    values,
    encryption,
    generalize,
    policy,
    rules,
    pii_scan,
    review_rules,
    analysis_rules,
    vertical_rules,
)


def build_registry(definitions: Iterable[Rule]) -> Mapping[str, Rule]:
    """A read-only ``{rule_id: rule}`` in definition order; refuses a duplicate id."""
    return MappingProxyType(by_id(definitions))


RULES: Mapping[str, Rule] = build_registry(
    rule for module in DEFINING_MODULES for rule in module.RULE_DEFINITIONS
)


def rules_for(scope: str) -> list[Rule]:
    """Rules of ``scope`` in catalogue order."""
    return [r for r in RULES.values() if r.scope == scope]


_SCOPE_TEXT = {
    "config": "the composed configuration as a whole (compliance review only, "
    "`privacy.review_rules.evaluate_config`)",
    "job": "a job on one node, at job start on the node and in the review "
    "(`privacy.rules.evaluate_job`)",
    "analysis": "a DP analysis on one node, by the node before anything is computed and by "
    "`confide audit analysis=NAME` (`analytics.policy_check`, `privacy.analysis_rules`)",
    "vertical": "a vertical job: every node's policy against the task, the join key and the "
    "label node, at job start and by `confide audit` (`privacy.vertical_rules`)",
    "parse": "enforced while a policy file is read (`privacy.policy.load_policy`)",
    "column": "each policy column, at parse time",
    "policy": "the whole parsed policy, at parse time",
    "keys": "key files and keyrings (`privacy.keys`)",
    "transform": "values, while a transform runs (`privacy.apply`)",
    "scan": "the PII scan (`confide privacy scan`)",
}


def rule_catalogue_document() -> str:
    """``docs/rules.md``: every registered rule by scope, with its severity and rationale."""
    lines = [
        "# Rule catalogue",
        "",
        "Generated from the rule registry (`privacy.registry.RULES`) by `confide rules --out "
        "docs/rules.md`; a test keeps this file in sync. Every finding of `confide audit`, "
        "every node refusal and every policy error names one of these rule ids.",
        "",
        "Severities: **ERROR** stops the job (and makes `confide audit` exit 1), **WARN** needs "
        "a reviewer's attention, **INFO** records what is used. Tiers follow the customer-data "
        "practice this product serves: core_sensitive (sensitive personal information under "
        "PIPL art. 28 and GB/T 35273-2020), general_sensitive (personal information used only "
        "under DP), non_sensitive.",
        "",
    ]
    for scope in [*_SCOPE_TEXT, *(s for s in SCOPES if s not in _SCOPE_TEXT)]:
        text = _SCOPE_TEXT.get(scope, f"scope {scope}")
        scoped = rules_for(scope)
        if not scoped:
            continue
        lines += [
            f"## Scope `{scope}`",
            "",
            f"Checked on {text}.",
            "",
            "| rule id | severity | rule | rationale |",
            "|---|---|---|---|",
        ]
        for r in scoped:
            why = r.rationale.replace("|", "\\|")
            lines.append(f"| `{r.rule_id}` | {r.severity} | {r.title} | {why} |")
        lines.append("")
    return "\n".join(lines)
