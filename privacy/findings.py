"""What a rule is and what it finds: the types every rule-defining module shares.

Each module that defines rules lists them in a module-level ``RULE_DEFINITIONS`` tuple (no
registration side effect); :mod:`confide.privacy.registry` assembles the one registry from
those tuples in a fixed order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["SCOPES", "SEVERITIES", "Finding", "Rule", "by_id"]

SEVERITIES = ("ERROR", "WARN", "INFO")
SCOPES = (
    "parse",
    "column",
    "policy",
    "job",
    "scan",
    "transform",
    "keys",
    "config",
    "analysis",
    "vertical",
)


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
    """A named rule with its default severity, rationale and (optional) check callable.

    ``scope`` says where it is checked (see :mod:`confide.privacy.registry`); an unknown
    severity or scope is refused when the rule is defined."""

    rule_id: str
    severity: str
    title: str
    rationale: str
    check: Callable | None = None
    scope: str = "job"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.rule_id}: severity must be one of {SEVERITIES}")
        if self.scope not in SCOPES:
            raise ValueError(f"rule {self.rule_id}: scope must be one of {SCOPES}")


def by_id(definitions: Iterable[Rule]) -> dict[str, Rule]:
    """``{rule_id: rule}`` for a module's own definitions (refuses a duplicate id)."""
    out: dict[str, Rule] = {}
    for rule in definitions:
        if rule.rule_id in out:
            raise ValueError(f"rule {rule.rule_id} is defined twice")
        out[rule.rule_id] = rule
    return out
