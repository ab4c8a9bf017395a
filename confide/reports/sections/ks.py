"""The KS curve section."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_num as _f
from ..curves import ks_curve
from ..html_page import Section, paragraph, side, table

__all__ = ["ks"]


def ks(ctx: ReportContext) -> Section:
    """KS curve of the federated model and the KS of every model."""
    hists = ctx.run.histograms()
    body = (
        paragraph(
            "The Kolmogorov-Smirnov statistic (credit-scoring convention): the largest gap "
            "between the cumulative score distributions of negatives and positives.",
            "lead",
        )
        + '<div class="figs">'
    )
    body += ctx.fig(
        "ks",
        lambda: plots.ks_png(hists),
        "KS curve",
        "The dashed line marks the score threshold where the two groups are best separated.",
    )
    rows = []
    for name in plots.ordered_models(hists):
        curve = ks_curve(*hists[name])
        rows.append((plots.model_label(name), _f(curve.ks), _f(curve.ks_threshold)))
    body += side(
        "<h3>KS of every model</h3>"
        + table(["model", "KS", "at score"], rows)
        + paragraph(
            "Higher KS separates positives from negatives better; "
            "credit-scoring practice reads 0.4–0.6 as good."
        )
    )
    return Section("ks", "KS curve", body + "</div>")
