"""The Privacy budget section: each node's cumulative ε against its per-run limit."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..html_page import Section, paragraph, table

__all__ = ["privacy_budget"]


def privacy_budget(ctx: ReportContext) -> Section | None:
    """Cumulative ε per node per round against its budget (None before any round)."""
    numbers = [int(r["round"]) for r in ctx.run.rounds if r.get("train")]
    if not numbers:
        return None
    epsilon = {
        node: [
            r.get("train", {}).get(node, {}).get("epsilon")
            for r in ctx.run.rounds
            if r.get("train")
        ]
        for node in ctx.run.node_names
    }
    budgets = {n.node: n.budget_per_run for n in ctx.facts.nodes}
    if ctx.run.dp.get("enabled"):
        body = (
            paragraph(
                "Each node's cumulative ε for this run after every round (one accountant "
                "per node for the whole run), against the node's own per-run limit from its "
                "policy.",
                "lead",
            )
            + '<div class="figs">'
        )
        body += ctx.fig(
            "epsilon",
            lambda: plots.epsilon_png(numbers, epsilon, budgets),
            "Privacy budget per node per round",
            "Dashed: the node's budget per run; a node refuses any round that would exceed it.",
        )
        body += "</div>"
    else:
        body = paragraph("DP was off: no ε was spent and no guarantee holds.", "bad")
    rows = [
        (
            n.node,
            _f(n.budget_per_run, 2),
            _f(n.epsilon_spent),
            _f(n.noise_multiplier),
            _int(n.steps),
            _f(n.lifetime_epsilon, 2),
            f"{_f(n.lifetime_spent_before, 2)} → {_f(n.lifetime_spent_after, 2)}",
        )
        for n in ctx.facts.nodes
    ]
    body += table(
        [
            "node",
            "budget per run (ε)",
            "ε spent",
            "noise multiplier",
            "DP-SGD steps",
            "lifetime budget (ε)",
            "ledger: lifetime spent",
        ],
        rows,
    )
    return Section("privacy-budget", "Privacy budget per node", body)
