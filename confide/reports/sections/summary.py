"""The Summary section: key figures and what the run achieved, or why it did not complete."""

from __future__ import annotations

from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..context import fmt_signed as _signed
from ..html_page import Section, keyfigures, paragraph

__all__ = ["stopped_summary", "summary"]


def summary(ctx: ReportContext) -> Section:
    """Key figures and the run's result in words (a completed run)."""
    m = ctx.run.metrics
    glob = m.get("global", {})
    central = ctx.baseline_auc("centralised")
    locals_ = {
        n.split(":", 1)[1]: b["pooled"]["roc_auc"]
        for n, b in ctx.baselines.items()
        if n.startswith("local_only:")
    }
    gains = {n: glob.get("roc_auc", 0.0) - auc for n, auc in locals_.items()}
    eps = [n.epsilon_spent for n in ctx.facts.nodes if n.epsilon_spent is not None]
    budgets = [n.budget_per_run for n in ctx.facts.nodes if n.budget_per_run is not None]
    cards = [(_f(glob.get("roc_auc")), "ROC-AUC of the federated model (pooled test set)")]
    if central is not None:
        cards.append(
            (
                _signed(glob.get("roc_auc", 0.0) - central),
                "difference to a centralised model without DP",
            )
        )
    if gains:
        rows = ctx.run.metrics.get("nodes", {})
        smallest = min(gains, key=lambda n: rows.get(n, {}).get("rows", 0))
        cards.append(
            (
                _signed(gains[smallest]),
                f"gain for the smallest node ({smallest}) over training alone",
            )
        )
    if ctx.run.dp.get("enabled"):
        limit = f" of {min(budgets):g}" if budgets else ""
        cards.append(
            (
                f"{max(eps):.2f}{limit}" if eps else "n/a",
                "largest ε spent by a node (of its per-run budget)",
            )
        )
    else:
        cards.append(("DP off", "no formal privacy guarantee for node updates"))
    names = ", ".join(ctx.run.node_names)
    text = [
        f"{len(ctx.run.node_names)} nodes ({names}) trained one model together over "
        f"{ctx.run.config.get('rounds')} rounds {ctx.dp_phrase()}; no customer record "
        "left its node.",
        f"On the pooled held-out test set ({_int(glob.get('n'))} rows, positive rate "
        f"{_f(glob.get('positive_rate'))}, positive means {ctx.positive}) the federated "
        f"model reaches ROC-AUC {_f(glob.get('roc_auc'))}, PR-AUC {_f(glob.get('pr_auc'))}, "
        f"KS {_f(glob.get('ks'))} and log-loss {_f(glob.get('log_loss'))}.",
    ]
    if central is not None:
        text.append(
            f"A centralised model without DP, trained on all nodes' rows pooled in one place "
            f"(what federation avoids), reaches ROC-AUC {_f(central)}."
        )
    for node, auc in locals_.items():
        text.append(
            f"Training alone, {node} would reach ROC-AUC {_f(auc)} on the same test set "
            f"(federated: {_signed(gains[node])})."
        )
    body = keyfigures(cards) + "".join(paragraph(t) for t in text)
    if not ctx.run.dp.get("enabled"):
        body += paragraph(
            "Differential privacy was OFF for this run: node updates carry no formal "
            "privacy guarantee.",
            "bad",
        )
    problems = ctx.facts.problems
    body += paragraph(
        f"Compliance: {len(problems)} rule finding(s) need attention (see Privacy)."
        if problems
        else "Compliance: no rule findings; every node's policy allows this job.",
        "bad" if problems else "good",
    )
    return Section("summary", "Summary", body)


def stopped_summary(ctx: ReportContext) -> Section:
    """The summary of a run that did not complete."""
    body = paragraph(
        f"{len(ctx.run.node_names)} nodes ({', '.join(ctx.run.node_names)}) started a run "
        f"of {ctx.run.config.get('rounds')} rounds {ctx.dp_phrase()}. The run did NOT "
        "complete.",
        "bad",
    )
    return Section("summary", "Summary", body)
