"""The verdict part every review shares: findings of the federation and of each node, their
counts by severity, the exit code and each node's ERROR rule ids."""

from __future__ import annotations

from typing import Any

from confide.privacy import Finding

__all__ = ["Verdict"]


class Verdict:
    """Mixin for a review dataclass with ``findings`` and ``nodes`` (each with ``findings``)."""

    findings: list[Finding]
    nodes: list[Any]

    @property
    def all_findings(self) -> list[Finding]:
        """Federation-level findings, then each node's."""
        return [*self.findings, *(f for n in self.nodes for f in n.findings)]

    def count(self, severity: str) -> int:
        """How many findings have ``severity``."""
        return sum(1 for f in self.all_findings if f.severity == severity)

    @property
    def exit_code(self) -> int:
        """1 when any finding is an ERROR, else 0."""
        return 1 if self.count("ERROR") else 0

    def node_errors(self, node: str) -> list[str]:
        """Rule ids of ``node``'s ERROR findings (node rules and node-file rules)."""
        return sorted(
            {f.rule_id for f in self.all_findings if f.node == node and f.severity == "ERROR"}
        )
