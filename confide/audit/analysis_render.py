"""Render an :class:`~confide.audit.analysis.AnalysisAudit`: Markdown, JSON or HTML (the
reports' page builder: inline CSS, nothing loaded from the network)."""

from __future__ import annotations

import json

from confide.audit.verdict import findings_html, findings_table, markdown_cell
from confide.reports.html_page import Section, bullets, page, paragraph, table

from .analysis import AnalysisAudit, AnalysisNodeView

__all__ = ["render_analysis", "render_analysis_html", "render_analysis_markdown"]

_ORDER = {"ERROR": 0, "WARN": 1, "INFO": 2}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


_cell = markdown_cell


def _kinds(node: AnalysisNodeView) -> str:
    """Earlier spend by kind, e.g. ``training 3, analysis 2: one ledger``."""
    parts = ", ".join(f"{k} {v:g}" for k, v in sorted(node.spent_by_kind.items()))
    return f"{parts}: one ledger for training and analyses" if parts else "one ledger"


def _budget_rows(node: AnalysisNodeView) -> list[tuple[str, str]]:
    b = node.budget
    if b is None:
        return []
    return [
        ("per-run limits", f"epsilon <= {b.max_epsilon_per_run:g}, delta <= {b.max_delta:g}"),
        (
            "lifetime budget",
            f"epsilon {b.lifetime_epsilon:g}; spent before this analysis {b.lifetime_spent:g} "
            f"({_kinds(node)}); remaining {b.remaining:g}; this analysis "
            f"{b.epsilon:g} (delta {b.delta:g}); remaining after it {b.remaining_after:g}",
        ),
    ]


def _node_facts(node: AnalysisNodeView) -> list[tuple[str, str]]:
    facts = [("data", node.source)]
    if node.policy_error:
        return [*facts, ("policy", f"{node.policy_path}: NOT USABLE ({node.policy_error})")]
    facts.append(("policy", node.policy_path))
    facts += _budget_rows(node)
    facts.append(("budget ledger", node.ledger))
    return facts


def _node_verdict(report: AnalysisAudit, node: AnalysisNodeView) -> str:
    errors = report.node_errors(node.name)
    return f"REFUSES this analysis ({', '.join(errors)})" if errors else "accepts this analysis"


def _column_rows(report: AnalysisAudit) -> list[tuple[str, ...]]:
    names = [n.name for n in report.nodes]
    rows = []
    for col in report.columns:
        tiers = [n.tiers.get(col.name, "?") for n in report.nodes]
        tier = (
            tiers[0]
            if len(set(tiers)) == 1
            else "; ".join(f"{n}: {t}" for n, t in zip(names, tiers, strict=True))
        )
        rows.append((col.name, tier if tiers else "?", col.declared, col.used_by))
    return rows


def _part_rows(report: AnalysisAudit) -> list[tuple[str, ...]]:
    rows = [(p.name, p.what, p.columns, f"{p.epsilon:g}", p.expected_error) for p in report.parts]
    if report.epsilon is not None:
        rows.append(
            ("total per node", f"delta {_num(report.delta)}", "", f"{report.epsilon:g}", "")
        )
    return rows


def _shown(report: AnalysisAudit) -> list:
    return sorted(report.all_findings, key=lambda f: _ORDER[f.severity])


_COLUMN_HEAD = ["column", "tier (node policy)", "bounds / categories", "used by"]
_PART_HEAD = ["part", "releases", "columns", "epsilon", "expected 95% error (before release)"]


def render_analysis_markdown(report: AnalysisAudit) -> str:
    """The analysis review as Markdown."""
    out = [
        f"# Analysis review: `{report.analysis}` on federation `{report.federation}`",
        "",
        f"**{report.headline}**",
        "",
        f"- command: `{report.command}`",
        f"- config sha256: `{report.config_sha256}`",
        f"- transport: {report.transport}",
        "",
        "## Where noise is added",
        "",
        *(f"- {line}" for line in report.noise),
        "",
        "## Parts and epsilon (per node)",
        "",
    ]
    out += ["| " + " | ".join(_PART_HEAD) + " |", "|---|---|---|---|---|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in _part_rows(report)]
    out += ["", "## Columns", ""]
    out += ["| " + " | ".join(_COLUMN_HEAD) + " |", "|---|---|---|---|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in _column_rows(report)]
    out += ["", "## Findings", ""]
    out += findings_table(_shown(report))
    out.append("")
    for node in report.nodes:
        out += [f"## Node `{node.name}`", ""]
        out += [f"- {k}: {v}" for k, v in _node_facts(node)]
        out += [f"- verdict: {_node_verdict(report, node)}", ""]
    return "\n".join(out)


def render_analysis_html(report: AnalysisAudit) -> str:
    """The analysis review as one self-contained HTML page."""
    verdict = paragraph(report.headline, "bad" if report.exit_code else "good")
    job = [("command", report.command), ("config sha256", report.config_sha256)]
    shown = _shown(report)
    findings = findings_html(shown)
    sections = [
        Section("verdict", "Verdict", verdict + table(["", ""], job, text_columns=(0, 1))),
        Section("noise", "Where noise is added", bullets([*report.noise, report.transport])),
        Section("parts", "Parts and epsilon", table(_PART_HEAD, _part_rows(report), (0, 1, 2, 4))),
        Section("columns", "Columns", table(_COLUMN_HEAD, _column_rows(report), (0, 1, 2, 3))),
        Section("findings", "Findings", findings),
    ]
    for node in report.nodes:
        facts = [*_node_facts(node), ("verdict", _node_verdict(report, node))]
        sections.append(
            Section(f"node-{node.name}", f"Node {node.name}", table(["", ""], facts, (0, 1)))
        )
    return page(
        f"Analysis review: {report.analysis} on federation {report.federation}",
        report.headline,
        sections,
        "Generated by `confide audit analysis=...` from the composed config, each node's policy "
        "and budget ledger; no data value is read.",
    )


def render_analysis(report: AnalysisAudit, fmt: str) -> str:
    """Render in ``fmt`` (md, json or html); the caller has checked ``fmt``."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "html":
        return render_analysis_html(report)
    return render_analysis_markdown(report)
