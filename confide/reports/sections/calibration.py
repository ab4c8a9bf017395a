"""The Calibration section: predicted probabilities against observed rates."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..curves import calibration_curve
from ..html_page import Section, paragraph, side, table

__all__ = ["calibration"]


def calibration(ctx: ReportContext) -> Section:
    """Calibration curve and per-group table of the federated model."""
    hists = ctx.run.histograms()
    body = (
        paragraph(
            "Do predicted probabilities match observed rates? Test rows are split into 10 "
            "groups of about equal size by score; each point compares the group's mean "
            "predicted probability with its observed positive rate.",
            "lead",
        )
        + '<div class="figs">'
    )
    body += ctx.fig(
        "calibration",
        lambda: plots.calibration_png(hists),
        "Calibration curve",
        "Points on the diagonal are perfectly calibrated. ECE: expected "
        "calibration error (row-weighted mean gap). Below: rows per score.",
    )
    cal = calibration_curve(*hists["global"])
    rows = [
        (i + 1, _f(p), _f(o), _int(n))
        for i, (p, o, n) in enumerate(
            zip(cal.mean_predicted, cal.observed_rate, cal.counts, strict=True)
        )
    ]
    body += side(
        "<h3>Federated model, per group</h3>"
        + table(["group", "mean predicted", "observed rate", "rows"], rows)
        + paragraph(f"Expected calibration error: {cal.ece:.3f}.")
    )
    return Section("calibration", "Calibration", body + "</div>")
