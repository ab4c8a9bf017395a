"""The Gains and lift section: the targeting view by decile."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..curves import decile_table
from ..html_page import Section, paragraph, table

__all__ = ["gains"]


def gains(ctx: ReportContext) -> Section:
    """Cumulative gains and lift, and the decile table of the federated model."""
    hists = ctx.run.histograms()
    body = (
        paragraph(
            "Targeting view: rank customers by score and contact the top deciles. Gains show "
            "the share of positives reached; lift shows how many times the overall rate each "
            "decile achieves.",
            "lead",
        )
        + '<div class="figs">'
    )
    body += ctx.fig(
        "gains_lift",
        lambda: plots.gains_lift_png(hists),
        "Cumulative gains and lift by decile",
        "Left: all models; right: the federated model.",
        wide=True,
    )
    body += "</div><h3>Decile table, federated model (pooled test set)</h3>"
    rows = [
        (
            r.decile,
            f"{r.score_min:.3f} – {r.score_max:.3f}",
            _int(r.rows),
            _int(r.positives),
            _f(r.response_rate),
            f"{r.cumulative_captured * 100:.1f}%",
            f"{r.lift:.2f}",
            f"{r.cumulative_lift:.2f}",
        )
        for r in decile_table(*hists["global"])
    ]
    body += table(
        [
            "decile",
            "score range",
            "rows",
            "positives",
            "positive rate",
            "cumulative positives captured",
            "lift",
            "cumulative lift",
        ],
        rows,
    )
    body += paragraph(
        "Rows sharing one histogram bin at a decile boundary are split in proportion, so "
        "row counts are rounded.",
        "lead",
    )
    return Section("gains", "Gains and lift", body)
