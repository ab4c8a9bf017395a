"""Render a :class:`~confide.audit.vertical.VerticalAudit`: Markdown, JSON or HTML (the reports'
page builder: inline CSS, nothing loaded from the network)."""

from __future__ import annotations

import json

from confide.audit.verdict import (
    columns_html,
    columns_markdown,
    findings_html,
    findings_table,
    markdown_cell,
)
from confide.reports.html_page import Section, bullets, page, paragraph, table

from .vertical import VerticalAudit, VerticalNodeView

__all__ = ["render_vertical", "render_vertical_html", "render_vertical_markdown"]

_ORDER = {"ERROR": 0, "WARN": 1, "INFO": 2}
_cell = markdown_cell


def _num(value: float | None, fmt: str = "g") -> str:
    return "n/a" if value is None else format(value, fmt)


def _shown(report: VerticalAudit) -> list:
    kept = [f for f in report.all_findings if f.rule_id != "FIELD-USE"]
    return sorted(kept, key=lambda f: _ORDER[f.severity])


def _verdict(report: VerticalAudit, node: VerticalNodeView) -> str:
    errors = report.node_errors(node.name)
    return f"REFUSES this job ({', '.join(errors)})" if errors else "accepts this job"


_JOIN_HEAD = ["node", "role", "join key tier (must be core_sensitive)"]
_FIELD_HEAD = ["field", "kind", "held by", "tier there"]
_DP_HEAD = [
    "node",
    "role",
    "epsilon per run",
    "release",
    "release epsilon",
    "release sigma",
    "DP-SGD sigma",
]
_CROSS_HEAD = ["step", "from", "to", "what", "protection"]


def _join_rows(report: VerticalAudit) -> list[tuple[str, ...]]:
    return [
        (n.name, n.role, n.join_key_tier or ("policy not usable" if n.policy_error else "MISSING"))
        for n in report.nodes
    ]


def _field_rows(report: VerticalAudit) -> list[tuple[str, ...]]:
    return [
        (f.name, f.kind, ", ".join(f.holders) or "NO NODE", ", ".join(f.tiers) or "-")
        for f in report.fields
    ]


def _dp_rows(report: VerticalAudit) -> list[tuple[str, ...]]:
    rows = []
    for n in report.nodes:
        sigma = _num(n.release_sigma, ".3g")
        if n.moment_sigma is not None:
            sigma += f" (moments {_num(n.moment_sigma, '.3g')})"
        rows.append(
            (
                n.name,
                n.role,
                _num(n.planned_epsilon) if report.dp.get("enabled") else "DP OFF",
                n.release or "-",
                _num(n.release_epsilon),
                sigma if report.dp.get("enabled") else "none (DP off)",
                n.sgd_sigma,
            )
        )
    return rows


def _cross_rows(report: VerticalAudit) -> list[tuple[str, ...]]:
    return [(c.step, c.sender, c.receiver, c.what, c.protection) for c in report.crossings]


def _psi_text(report: VerticalAudit) -> str:
    psi = report.psi
    pad = psi.get("pad_to")
    padding = "none (set sizes revealed)" if pad is None else pad
    return (
        f"reveal_to {psi.get('reveal_to')}, pad_to {padding}, min_overlap {psi.get('min_overlap')}"
    )


def _node_facts(node: VerticalNodeView) -> list[tuple[str, str]]:
    facts = [("role", f"{node.role} node"), ("data", node.source)]
    if node.policy_error:
        return [*facts, ("policy", f"{node.policy_path}: NOT USABLE ({node.policy_error})")]
    facts += [
        ("policy", node.policy_path),
        ("features it contributes", ", ".join(node.features) or "none"),
        ("holds the label", "yes" if node.holds_label else "no"),
        (
            "budget",
            f"per-run limit {_num(node.max_epsilon_per_run)}; lifetime "
            f"{_num(node.lifetime_epsilon)}, spent before this run {_num(node.lifetime_spent)}; "
            f"this run reserves {_num(node.planned_epsilon)} before it trains",
        ),
        ("budget ledger", node.ledger),
        ("key file", node.keys),
    ]
    return facts


def _table_md(head: list[str], rows: list[tuple[str, ...]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def render_vertical_markdown(report: VerticalAudit) -> str:
    """The vertical review as Markdown."""
    out = [
        f"# Vertical job review: federation `{report.federation}`, task `{report.task}`",
        "",
        f"**{report.headline}**",
        "",
        f"- command: `{report.command}`",
        f"- config sha256: `{report.config_sha256}` (the run ledger records the same hash)",
        f"- join key `{report.join_key}`; label `{report.label}` at node `{report.label_node}`",
        f"- private set intersection: {_psi_text(report)}",
        f"- transport: {report.transport}",
        f"- DP: {report.dp['summary']}",
        "",
        "## Join key tier at every node",
        "",
        *_table_md(_JOIN_HEAD, _join_rows(report)),
        "",
        "## Who holds which field",
        "",
        *_table_md(_FIELD_HEAD, _field_rows(report)),
        "",
        "## Noise per node",
        "",
        *_table_md(_DP_HEAD, _dp_rows(report)),
        "",
        "## What crosses each boundary",
        "",
        *_table_md(_CROSS_HEAD, _cross_rows(report)),
        "",
        "## What is disclosed",
        "",
        *(f"- {line}" for line in report.disclosures),
        "",
        "## Where outputs are kept",
        "",
        *(f"- {line}" for line in report.outputs),
        "",
        "## Findings",
        "",
        *findings_table(_shown(report)),
        "",
    ]
    for node in report.nodes:
        out += [f"## Node `{node.name}`", ""]
        out += [f"- {k}: {v}" for k, v in _node_facts(node)]
        out += [f"- verdict: {_verdict(report, node)}", ""]
        if node.columns:
            out += [*columns_markdown(node.columns), ""]
    return "\n".join(out)


def render_vertical_html(report: VerticalAudit) -> str:
    """The vertical review as one self-contained HTML page."""
    verdict = paragraph(report.headline, "bad" if report.exit_code else "good")
    job = [
        ("command", report.command),
        ("config sha256", report.config_sha256),
        ("join key", str(report.join_key)),
        ("label", f"{report.label} at node {report.label_node}"),
        ("private set intersection", _psi_text(report)),
        ("transport", report.transport),
        ("DP", report.dp["summary"]),
    ]
    sections = [
        Section("verdict", "Verdict", verdict + table(["", ""], job, text_columns=(0, 1))),
        Section(
            "join-key",
            "Join key tier at every node",
            table(_JOIN_HEAD, _join_rows(report), text_columns=(0, 1, 2)),
        ),
        Section(
            "fields",
            "Who holds which field",
            table(_FIELD_HEAD, _field_rows(report), text_columns=(0, 1, 2, 3)),
        ),
        Section(
            "noise",
            "Noise per node",
            table(_DP_HEAD, _dp_rows(report), text_columns=(0, 1, 3, 5, 6)),
        ),
        Section(
            "crossings",
            "What crosses each boundary",
            table(_CROSS_HEAD, _cross_rows(report), text_columns=(0, 1, 2, 3, 4)),
        ),
        Section("disclosed", "What is disclosed", bullets(report.disclosures)),
        Section("outputs", "Where outputs are kept", bullets(report.outputs)),
        Section("findings", "Findings", findings_html(_shown(report))),
    ]
    for node in report.nodes:
        facts = [*_node_facts(node), ("verdict", _verdict(report, node))]
        body = table(["", ""], facts, text_columns=(0, 1))
        if node.columns:
            body += columns_html(node.columns)
        sections.append(Section(f"node-{node.name}", f"Node {node.name}", body))
    return page(
        f"Vertical job review: federation {report.federation}, task {report.task}",
        report.headline,
        sections,
        "Generated by `confide audit` from the composed config and each node's policy, data "
        "header and budget ledger; no data value is read.",
    )


def render_vertical(report: VerticalAudit, fmt: str) -> str:
    """Render in ``fmt`` (md, json or html); the caller has checked ``fmt``."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return render_vertical_html(report)
    return render_vertical_markdown(report)
