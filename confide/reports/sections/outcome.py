"""The Why the run stopped section of a run that did not complete."""

from __future__ import annotations

from ..context import ReportContext
from ..html_page import Section, paragraph, table

__all__ = ["outcome"]


def outcome(ctx: ReportContext) -> Section:
    """Why the run stopped: the message and each node's refusal reason."""
    o = ctx.run.outcome
    body = paragraph(
        f"The run stopped after {o.get('rounds_completed', 0)} completed round(s): "
        f"{o.get('message', '')}",
        "bad",
    )
    reasons = o.get("reasons") or {}
    if reasons:
        body += table(["node", "reason"], list(reasons.items()), text_columns=(0, 1))
    body += paragraph(
        "No global model was saved and no test metrics were computed. Fix the refusals "
        "above (usually a node's policy or budget) and run again.",
        "lead",
    )
    return Section("outcome", "Why the run stopped", body)
