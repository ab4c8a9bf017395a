"""The survival task's report sections: C-index per round, calibration at each horizon,
predicted survival curves by segment and the Kaplan-Meier curve (binned counts with a minimum
cell size, not DP), from the run directory's ``history.json`` and ``metrics.json`` only."""

from __future__ import annotations

from typing import Any

from ..context import ReportContext
from ..context import fmt_num as _f
from ..context import fmt_signed as _signed
from ..html_page import Section, keyfigures, paragraph, side, table
from ..plots import _figure, _png

__all__ = ["survival_calibration", "survival_curves", "survival_rounds", "survival_summary"]


def _survival(ctx: ReportContext) -> dict[str, Any]:
    return ctx.run.metrics.get("survival") or {}


def survival_summary(ctx: ReportContext) -> Section | None:
    """Key figures: the federated model's C-index, IBS and AUC at the horizons; baselines."""
    glob = ctx.run.metrics.get("global") or {}
    if "c_index" not in glob:
        return None
    horizons = _survival(ctx).get("horizons", [])
    cards = [(_f(glob.get("c_index")), "C-index (Harrell), pooled test")]
    cards += [(_f(glob.get(f"auc@{h:g}")), f"time-dependent AUC at {h:g}") for h in horizons]
    cards.append((_f(glob.get("ibs")), "integrated Brier score (IPCW)"))
    rows = [("federated (this run)", _f(glob.get("c_index")), _f(glob.get("ibs")), "")]
    for name, entry in ctx.baselines.items():
        pooled = entry.get("pooled") or {}
        gap = None if pooled.get("c_index") is None else glob["c_index"] - pooled["c_index"]
        rows.append((name, _f(pooled.get("c_index")), _f(pooled.get("ibs")), _signed(gap)))
    body = keyfigures(cards) + side(
        "<h3>Against the baselines (pooled test)</h3>"
        + table(["model", "C-index", "IBS", "federated minus it"], rows)
        + paragraph(
            "centralised_cox: Cox proportional hazards on all training rows without DP; "
            "centralised / centralised_dp: the hazard model on all rows without / with the "
            "run's DP; local_only: each node alone under its DP settings."
        )
    )
    return Section("survival-summary", "Time to churn: summary", body)


def survival_rounds(ctx: ReportContext) -> Section | None:
    """The federated C-index, AUC at the horizons and IBS after every round."""
    rounds = [r for r in ctx.run.rounds if (r.get("global") or {}).get("c_index") is not None]
    if not rounds:
        return None
    horizons = _survival(ctx).get("horizons", [])
    rows = [
        (
            r["round"],
            _f(r["global"]["c_index"]),
            *(_f(r["global"].get(f"auc@{h:g}")) for h in horizons),
            _f(r["global"].get("ibs")),
        )
        for r in rounds
    ]
    head = ["round", "C-index", *(f"AUC at {h:g}" for h in horizons), "IBS"]
    body = paragraph(
        "Computed each round from the nodes' binned aggregates (risk bin x time bin x event "
        "counts and Brier sums); no row-level prediction leaves a node.",
        "lead",
    ) + table(head, rows)
    return Section("c-index", "C-index per round", body)


def survival_calibration(ctx: ReportContext) -> Section | None:
    """Predicted against Kaplan-Meier observed churn at each horizon, by risk group."""
    calibration = _survival(ctx).get("calibration") or {}
    if not calibration:
        return None
    body = paragraph(
        "Customers grouped by predicted churn probability at each horizon (about ten groups, "
        "each of at least ten customers): the mean predicted probability against the "
        "Kaplan-Meier churn observed in the group by that horizon.",
        "lead",
    )
    for horizon, groups in calibration.items():
        rows = [
            (i + 1, int(g["n"]), _f(g["predicted"]), _f(g["observed"]))
            for i, g in enumerate(groups)
        ]
        body += f"<h3>Horizon {horizon}</h3>" + table(
            ["risk group", "customers", "predicted churn", "observed churn (KM)"], rows
        )
    return Section("survival-calibration", "Calibration at each horizon", body)


def _curves_png(segments: dict[str, Any], km: list[dict[str, float]]) -> bytes:
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    times = [0.0, *segments.get("times", [])]
    for name, seg in segments.get("segments", {}).items():
        ax.plot(times, [1.0, *seg["survival"]], label=f"{name} (n={seg['n']})")
    if km:
        ax.step(
            [0.0, *(c["end"] for c in km)],
            [1.0, *(c["survival"] for c in km)],
            where="post",
            color="black",
            linestyle="--",
            label="Kaplan-Meier, binned",
        )
    ax.set_xlabel("time since snapshot")
    ax.set_ylabel("survival (not churned)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return _png(fig)


def survival_curves(ctx: ReportContext) -> Section | None:
    """Predicted survival curves by segment and the binned Kaplan-Meier curve."""
    info = _survival(ctx)
    segments = info.get("segments") or {}
    km = (info.get("kaplan_meier") or {}).get("cells") or []
    if not segments and not km:
        return None
    body = paragraph(
        f"Mean predicted survival by {segments.get('feature', 'segment')} (segments of at "
        "least ten customers). Kaplan-Meier curves are statistics of rows: this one is "
        + (info.get("kaplan_meier") or {}).get("release", "binned")
        + ", on the pooled held-out split.",
        "lead",
    )
    body += '<div class="figs">' + ctx.fig(
        "survival_curves",
        lambda: _curves_png(segments, km),
        "Predicted survival curves by segment",
        "Lines: mean predicted survival per segment; dashed: binned Kaplan-Meier.",
    )
    rows = [
        (
            _f(c["end"], 0),
            int(c["at_risk"]),
            int(c["events"]),
            int(c["censored"]),
            _f(c["survival"]),
        )
        for c in km
    ]
    body += side(
        "<h3>Kaplan-Meier cells</h3>"
        + table(["up to", "at risk", "events", "censored", "survival"], rows)
    )
    return Section("survival-curves", "Survival curves by segment", body + "</div>")
