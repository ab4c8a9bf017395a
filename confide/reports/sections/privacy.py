"""The Privacy section: DP parameters, transport, compliance findings, tiers per node."""

from __future__ import annotations

from html import escape
from pathlib import Path

from confide.privacy.review_rules import noise_findings, transport
from confide.wire import SECURE_NOISE_METRIC

from ..context import ReportContext
from ..context import fmt_num as _f
from ..html_page import Section, paragraph, table

__all__ = ["privacy", "reported_noise"]


def privacy(ctx: ReportContext) -> Section:
    """DP parameters, transport, compliance findings and the tiers of every node's policy."""
    facts = ctx.facts
    dp = facts.dp
    cfg = ctx.run.config
    train = cfg.get("train", {})
    enabled = bool(dp.get("enabled"))
    dp_rows = [
        ("DP-SGD (sample-level, Opacus)", "on" if enabled else "OFF"),
        (
            "target ε per node per run",
            _f(dp.get("epsilon_target", dp.get("epsilon")), 2) if enabled else "n/a",
        ),
        ("δ", str(dp.get("delta")) if enabled else "n/a"),
        ("clipping norm (max_grad_norm)", str(dp.get("max_grad_norm", "n/a"))),
        ("accountant", str(dp.get("accountant", "n/a"))),
        ("noise source (proposed)", str(dp.get("noise", "seeded")) if enabled else "n/a"),
        ("per-sample gradients", str(dp.get("grad_sample_mode", "n/a"))),
        (
            "rounds × local epochs, batch size",
            f"{cfg.get('rounds')} × {train.get('local_epochs')}, {train.get('batch_size')}",
        ),
    ]
    body = "<h3>Differential privacy</h3>" + table(
        ["parameter", "value"], dp_rows, text_columns=(0, 1)
    )
    if enabled:
        body += _noise_table(ctx)
    body += "<h3>Transport and aggregation</h3>" + table(
        ["", "status"],
        [
            ("transport", facts.transport),
            ("secure aggregation", facts.secure_aggregation),
            ("client-level DP (on top of DP-SGD)", facts.client_dp),
            ("strategy", str(cfg.get("strategy", {}).get("name", "n/a"))),
        ],
        text_columns=(0, 1),
    )
    body += "<h3>Compliance findings</h3>"
    summary_rows = []
    for n in facts.nodes:
        counts = {
            s: sum(1 for f in n.findings if f.severity == s) for s in ("ERROR", "WARN", "INFO")
        }
        summary_rows.append(
            (
                n.node,
                counts["ERROR"],
                counts["WARN"],
                counts["INFO"],
                n.policy_error or "policy loaded",
            )
        )
    body += paragraph(
        "The shared rule engine (the same rules every node enforces before training) run on "
        "this job for every node. INFO entries record each field's use; they are listed "
        "as the 'used as' column below.",
        "lead",
    )
    body += table(
        ["node", "errors", "warnings", "field-use records", "policy"],
        summary_rows,
        text_columns=(0, 4),
    )
    problems = facts.problems
    if problems:
        body += table(
            ["severity", "rule", "node", "field", "finding"],
            [(f.severity, f.rule_id, f.node, f.field or "", f.message) for f in problems],
            text_columns=(0, 1, 2, 3, 4),
        )
    else:
        body += paragraph("No findings: no errors or warnings on any node.", "good")
    body += "<h3>Tiers and transforms per node</h3>"
    body += _policy_tables(ctx)
    return Section("privacy", "Privacy", body)


def reported_noise(rounds: list[dict]) -> dict[str, str]:
    """The noise source each node reported in its last train reply (``secure`` or ``seeded``)."""
    out: dict[str, str] = {}
    for record in rounds:
        for node, metrics in record.get("train", {}).items():
            if SECURE_NOISE_METRIC in metrics:
                out[node] = "secure" if metrics[SECURE_NOISE_METRIC] == 1.0 else "seeded"
    return out


def _noise_table(ctx: ReportContext) -> str:
    """What each node reported it drew its noise from, with the review's findings on it."""
    reported = reported_noise(ctx.run.rounds)
    if not reported:
        return paragraph("No node reported its noise source (no train reply).", "lead")
    findings = noise_findings(transport(ctx.run.config), reported)
    errors = {f.node for f in findings if f.severity == "ERROR"}
    rows = [
        (node, kind, "ERROR DP-NOISE-NOT-SECURE" if node in errors else "ok")
        for node, kind in sorted(reported.items())
    ]
    out = "<h4>Noise source each node used (from its train replies)</h4>"
    out += table(["node", "noise source", "review"], rows, text_columns=(0, 1, 2))
    if errors:
        out += paragraph(
            f"{len(errors)} node(s) drew seeded noise on the deployment engine: their noise is "
            "predictable from the seed (rule DP-NOISE-NOT-SECURE).",
            "bad",
        )
    return out


def _policy_tables(ctx: ReportContext) -> str:
    task = ctx.run.config.get("task", {})
    features = {str(f["name"]) for f in task.get("features", [])}
    label = str(task.get("label", {}).get("name", ""))
    groups: dict[str, list] = {}
    for n in ctx.facts.nodes:
        key = n.policy.sha256 if n.policy is not None else f"missing:{n.node}"
        groups.setdefault(key, []).append(n)
    out = []
    for members in groups.values():
        first = members[0]
        names = ", ".join(m.node for m in members)
        if first.policy is None:
            out.append(paragraph(f"{names}: {first.policy_error}", "bad"))
            continue
        policy = first.policy
        tiers: dict[str, int] = {}
        rows = []
        for col in policy.columns.values():
            tiers[col.tier.value] = tiers.get(col.tier.value, 0) + 1
            use = (
                "feature"
                if col.task_name in features
                else "label"
                if col.task_name == label
                else "not used"
            )
            if use == "feature" and col.tier.value == "general_sensitive":
                use += " (under DP)" if ctx.run.dp.get("enabled") else " (NO DP)"
            task_field = col.maps_to if col.maps_to and col.maps_to != col.name else ""
            rows.append((col.name, col.tier.value, col.role, col.transform, task_field, use))
        tier_text = ", ".join(f"{count} {tier}" for tier, count in tiers.items())
        out.append(
            f"<p><b>{escape(names)}</b>: policy <code>{escape(Path(policy.source).name)}"
            f"</code> (dataset '{escape(policy.dataset)}', dataset tier "
            f"{escape(policy.tier.value)}; {escape(tier_text)}; unknown columns: "
            f"{escape(policy.unknown_columns)})</p>"
        )
        out.append(
            table(
                ["column", "tier", "role", "transform", "feeds task field", "used as"],
                rows,
                text_columns=(0, 1, 2, 3, 4, 5),
            )
        )
    return "".join(out)
