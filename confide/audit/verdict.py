"""The parts every review shares: findings of the federation and of each node, their counts by
severity, the exit code and each node's ERROR rule ids; the findings table and the table of a
node's policy columns, in Markdown and HTML."""

from __future__ import annotations

from typing import Any

from confide.privacy import Finding
from confide.reports.html_page import paragraph, table

__all__ = [
    "Verdict",
    "columns_html",
    "columns_markdown",
    "findings_html",
    "findings_table",
    "markdown_cell",
]


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

    @property
    def headline(self) -> str:
        """``PASS|FAIL: n error(s), n warning(s), n info (exit code c)``."""
        word = "FAIL" if self.exit_code else "PASS"
        return (
            f"{word}: {self.count('ERROR')} error(s), {self.count('WARN')} warning(s), "
            f"{self.count('INFO')} info (exit code {self.exit_code})"
        )

    @property
    def command(self) -> str:
        """The ``confide audit`` command line that produced this review."""
        dirs = [f"--config-dir {d}" for d in getattr(self, "config_dirs", [])]
        return " ".join(["confide audit", *dirs, *getattr(self, "overrides", [])])


def markdown_cell(text: object) -> str:
    """``text`` safe inside one Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def findings_table(shown: list[Finding]) -> list[str]:
    """The Markdown findings table (or the line saying there is nothing to show)."""
    if not shown:
        return ["No errors or warnings."]
    c = markdown_cell
    return [
        "| severity | rule | node | field | finding |",
        "|---|---|---|---|---|",
        *(
            f"| {f.severity} | `{f.rule_id}` | {c(f.node)} | {c(f.field or '')} | {c(f.message)} |"
            for f in shown
        ),
    ]


_SEVERITY_CLASS = {"ERROR": "bad", "WARN": "warn", "INFO": ""}


def findings_html(shown: list[Finding]) -> str:
    """The HTML findings table (or the paragraph saying there is nothing to show)."""
    if not shown:
        return paragraph("No errors or warnings.", "good")
    return table(
        ["severity", "rule", "node", "field", "finding"],
        [(f.severity, f.rule_id, f.node, f.field or "", f.message) for f in shown],
        text_columns=(0, 1, 2, 3, 4),
        row_classes=[_SEVERITY_CLASS[f.severity] for f in shown],
    )


_COLUMN_HEAD = ["column", "tier", "role", "transform", "task use", "leaves the node"]


def _column_rows(columns: list[Any]) -> list[tuple[str, ...]]:
    return [(c.name, c.tier, c.role, c.transform, c.task_use or "-", c.leaves) for c in columns]


def columns_markdown(columns: list[Any]) -> list[str]:
    """The Markdown table of a node's policy columns (:class:`confide.audit.facts.ColumnView`)."""
    return [
        "| " + " | ".join(_COLUMN_HEAD) + " |",
        "|" + "---|" * len(_COLUMN_HEAD),
        *("| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in _column_rows(columns)),
    ]


def columns_html(columns: list[Any]) -> str:
    """The HTML table of a node's policy columns."""
    return table(_COLUMN_HEAD, _column_rows(columns), text_columns=(0, 1, 2, 3, 4, 5))
