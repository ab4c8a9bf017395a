"""The single rule registry shared by policy parsing, job checks, PII scans and audits.

Each :class:`Rule` has a ``scope``:

* ``"parse"``  - enforced by the policy parser itself (``check`` is None);
* ``"column"`` - ``check(column_rule) -> str | None`` run on every policy column at parse time;
* ``"policy"`` - ``check(policy) -> str | None`` run on the whole parsed policy;
* ``"job"``    - ``check(policy, usage) -> list[Finding]`` run by ``evaluate_job``;
* ``"scan"``   - produced by ``privacy.pii_scan`` (``check`` is None);
* ``"transform"`` / ``"keys"`` - refusals raised by transforms and keyrings (``check`` is None).
* ``"config"`` - ``check(review) -> list[Finding]`` run by ``privacy.review_rules.evaluate_config``
  on a composed config (plain dicts): transport, secrets, overrides, node files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RULES", "SEVERITIES", "Finding", "Rule", "register_rule", "rules_for"]

SEVERITIES = ("ERROR", "WARN", "INFO")
SCOPES = ("parse", "column", "policy", "job", "scan", "transform", "keys", "config")


@dataclass(frozen=True)
class Finding:
    """One result of a rule; ``message`` never contains raw data values or key material."""

    severity: str
    rule_id: str
    node: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f" field '{self.field}'" if self.field else ""
        return f"{self.severity} {self.rule_id} [{self.node}]{where}: {self.message}"


@dataclass(frozen=True)
class Rule:
    """A named rule with its default severity, rationale and (optional) check callable."""

    rule_id: str
    severity: str
    title: str
    rationale: str
    check: Callable | None = None
    scope: str = "job"


RULES: dict[str, Rule] = {}


def register_rule(rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``rule`` to :data:`RULES`; refuses to overwrite an existing id unless ``replace``."""
    if rule.severity not in SEVERITIES:
        raise ValueError(f"rule {rule.rule_id}: severity must be one of {SEVERITIES}")
    if rule.scope not in SCOPES:
        raise ValueError(f"rule {rule.rule_id}: scope must be one of {SCOPES}")
    if rule.rule_id in RULES and not replace:
        raise ValueError(
            f"rule {rule.rule_id} is already registered; pass replace=True to overwrite it"
        )
    RULES[rule.rule_id] = rule
    return rule


def rules_for(scope: str) -> list[Rule]:
    """Registered rules of ``scope`` in registration order."""
    return [r for r in RULES.values() if r.scope == scope]
