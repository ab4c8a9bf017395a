"""Render an :class:`~confide.audit.AuditReport`: Markdown for people, JSON for machines, and a
self-contained HTML page (inline CSS, nothing loaded from the network).

``FIELD-USE`` INFO findings are shown as the per-node column tables rather than repeated in the
findings table; JSON carries every finding.
"""

from __future__ import annotations

import json

from confide.audit.verdict import (
    columns_html,
    columns_markdown,
    findings_html,
    findings_table,
    markdown_cell,
)
from confide.core.errors import ConfideError
from confide.reports.html_page import Section, bullets, page, paragraph, table

from .facts import NodeView
from .review import AuditReport

__all__ = ["FORMATS", "AuditFormatError", "render", "render_html", "render_json", "render_markdown"]

FORMATS = ("md", "json", "html")


class AuditFormatError(ConfideError):
    """An unknown output format was asked for."""


def _num(value: float | None, fmt: str = "g") -> str:
    return "n/a" if value is None else format(value, fmt)


_cell = markdown_cell


def _shown(report: AuditReport) -> list:
    order = {"ERROR": 0, "WARN": 1, "INFO": 2}
    kept = [f for f in report.all_findings if f.rule_id != "FIELD-USE"]
    return sorted(kept, key=lambda f: order[f.severity])


def _node_facts(node: NodeView, report: AuditReport) -> list[tuple[str, str]]:
    dp = report.sample_dp
    facts = [("data", node.source)]
    if node.policy_error:
        facts.append(("policy", f"{node.policy_path}: NOT USABLE ({node.policy_error})"))
        return facts
    facts.append(
        (
            "policy",
            f"{node.policy_path} (sha256 {node.policy_sha256}; dataset "
            f"'{node.dataset}', dataset tier {node.dataset_tier})",
        )
    )
    n = node.train_rows
    line = f"{_num(n, 'd') if n is not None else 'unknown'} ({node.train_rows_basis})"
    if dp.get("enabled") and n:
        line += f"; delta {dp['delta']:g} vs 1/n = {1.0 / n:.3g}"
    facts.append(("training rows n", line))
    facts.append(
        (
            "per-run limits",
            f"epsilon <= {_num(node.max_epsilon_per_run)} (policy and "
            f"node config), delta <= {_num(node.max_delta)}",
        )
    )
    if dp.get("enabled"):
        facts.append(
            (
                "lifetime budget",
                f"epsilon {_num(node.lifetime_epsilon)}; spent before this run "
                f"{_num(node.lifetime_spent)}; this run plans {_num(node.planned_epsilon)}; "
                f"remaining after it {_num(node.lifetime_remaining_after_run)}",
            )
        )
    facts.append(("budget ledger", node.ledger))
    facts.append(("key file", node.keys))
    return facts


def render_markdown(report: AuditReport) -> str:
    """The review as Markdown."""
    out = [
        f"# Compliance review: federation `{report.federation}`, task `{report.task}`",
        "",
        f"**{report.headline}**",
        "",
    ]
    cmd = report.command
    out += [
        f"- command: `{cmd}`",
        f"- config sha256: `{report.config_sha256}` (the run ledger records the same hash)",
        f"- model `{report.model}`, strategy `{report.strategy}`, {report.rounds} rounds",
        "",
    ]
    out += [
        "## Guarantees",
        "",
        "| | |",
        "|---|---|",
        f"| sample-level DP | {_cell(report.sample_dp['summary'])} |",
        f"| client-level DP | {_cell(report.client_dp)} |",
        f"| secure aggregation | {_cell(report.secure_aggregation)} |",
        f"| transport | {_cell(report.transport)} |",
        "",
    ]
    out += ["## What leaves each node", "", *(f"- {m}" for m in report.messages), ""]
    out += ["## Where outputs are kept", "", *(f"- {m}" for m in report.outputs), ""]
    out += ["## Findings", ""]
    out += findings_table(_shown(report))
    out += [
        "",
        "FIELD-USE findings (which field is used, at which tier, with which transform) "
        "are the column tables below.",
        "",
    ]
    for node in report.nodes:
        out += [f"## Node `{node.name}`", ""]
        out += [f"- {k}: {v}" for k, v in _node_facts(node, report)]
        errors = report.node_errors(node.name)
        verdict = f"REFUSES this job ({', '.join(errors)})" if errors else "accepts this job"
        out += [f"- verdict: {verdict}", ""]
        if node.columns:
            out += [*columns_markdown(node.columns), ""]
    return "\n".join(out)


def render_json(report: AuditReport) -> str:
    """The review as JSON (every finding, every column)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render_html(report: AuditReport) -> str:
    """The review as one self-contained HTML page (the reports' page builder: inline CSS,
    nothing loaded from the network)."""
    verdict = paragraph(report.headline, "bad" if report.exit_code else "good")
    job = [
        ("command", report.command),
        ("config sha256", report.config_sha256),
        ("model", report.model),
        ("strategy", report.strategy),
        ("rounds", str(report.rounds)),
    ]
    sections = [
        Section("verdict", "Verdict", verdict + table(["", ""], job, text_columns=(0, 1))),
        Section(
            "guarantees",
            "Guarantees",
            table(
                ["", ""],
                [
                    ("sample-level DP", report.sample_dp["summary"]),
                    ("client-level DP", report.client_dp),
                    ("secure aggregation", report.secure_aggregation),
                    ("transport", report.transport),
                ],
                text_columns=(0, 1),
            ),
        ),
        Section("messages", "What leaves each node", bullets(report.messages)),
        Section("outputs", "Where outputs are kept", bullets(report.outputs)),
    ]
    shown = _shown(report)
    findings = findings_html(shown)
    sections.append(Section("findings", "Findings", findings))
    for node in report.nodes:
        errors = report.node_errors(node.name)
        verdict = f"REFUSES this job ({', '.join(errors)})" if errors else "accepts this job"
        facts = [*_node_facts(node, report), ("verdict", verdict)]
        body = table(["", ""], facts, text_columns=(0, 1))
        if node.columns:
            body += columns_html(node.columns)
        sections.append(Section(f"node-{node.name}", f"Node {node.name}", body))
    return page(
        f"Compliance review: federation {report.federation}, task {report.task}",
        report.headline,
        sections,
        "Generated by `confide audit` from the composed config, each node's policy, data header "
        "and budget ledger; no data value is read.",
    )


def render(report: AuditReport, fmt: str) -> str:
    """Render in ``fmt`` (md, json or html); an analysis or a vertical review by its own
    renderer."""
    renderers = {"md": render_markdown, "json": render_json, "html": render_html}
    if fmt not in renderers:
        raise AuditFormatError(f"--format must be one of {', '.join(FORMATS)} (rule: audit format)")
    from .analysis import AnalysisAudit

    if isinstance(report, AnalysisAudit):
        from .analysis_render import render_analysis

        return render_analysis(report, fmt)
    from .vertical import VerticalAudit

    if isinstance(report, VerticalAudit):
        from .vertical_render import render_vertical

        return render_vertical(report, fmt)
    return renderers[fmt](report)
