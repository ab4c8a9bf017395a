"""The ROC and precision-recall section."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..html_page import Section, paragraph

__all__ = ["discrimination"]


def discrimination(ctx: ReportContext) -> Section:
    """ROC and precision-recall curves of every model."""
    hists = ctx.run.histograms()
    lead = (
        "How well each model ranks positives above negatives on the pooled held-out test "
        "set. The federated model (blue) should sit close to the centralised one (black, "
        "dashed) and above each node training alone (dotted)."
        if len(hists) > 1
        else "How well the federated model ranks positives above negatives on the pooled "
        "held-out test set (no baselines were run: baselines.enabled=false)."
    )
    body = paragraph(lead, "lead") + '<div class="figs">'
    body += ctx.fig(
        "roc",
        lambda: plots.roc_png(hists),
        "ROC curves",
        "ROC: higher and further left is better; AUC 0.5 is random.",
    )
    body += ctx.fig(
        "pr",
        lambda: plots.pr_png(hists),
        "Precision-recall curves",
        "Precision-recall: how pure the flagged group stays as more positives "
        "are found; AP is the average precision.",
    )
    return Section("discrimination", "ROC and precision-recall", body + "</div>")
