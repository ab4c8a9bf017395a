"""The Training rounds section: the global model after each round."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_num as _f
from ..html_page import Section, paragraph, table

__all__ = ["training"]


def _round_series(ctx: ReportContext) -> tuple[list[int], dict[str, list]]:
    rounds = [r for r in ctx.run.rounds if r.get("global")]
    numbers = [int(r["round"]) for r in rounds]
    keys = ("roc_auc", "pr_auc", "ks", "log_loss", "brier")
    return numbers, {k: [r["global"].get(k) for r in rounds] for k in keys}


def training(ctx: ReportContext) -> Section | None:
    """Global metrics per round (None when no round was evaluated)."""
    numbers, series = _round_series(ctx)
    if not numbers:
        return None
    body = (
        paragraph(
            "The global model after each round, evaluated by the nodes on their held-out "
            "splits and pooled through score histograms.",
            "lead",
        )
        + '<div class="figs">'
    )
    body += ctx.fig(
        "rounds",
        lambda: plots.rounds_png(numbers, series, ctx.baseline_auc("centralised")),
        "Global metrics per round",
        "Left: ranking metrics; right: losses.",
        wide=True,
    )
    body += "</div>"
    rows = []
    for r in ctx.run.rounds:
        eps = [t.get("epsilon") for t in r.get("train", {}).values()]
        eps = [e for e in eps if e is not None]
        g = r.get("global", {})
        rows.append(
            (
                r.get("round"),
                len(r.get("train", {})),
                ", ".join(r.get("refused", {})) or "none",
                _f(g.get("roc_auc")),
                _f(g.get("pr_auc")),
                _f(g.get("ks")),
                _f(g.get("log_loss")),
                _f(max(eps)) if eps else "n/a",
            )
        )
    body += table(
        [
            "round",
            "nodes trained",
            "refused",
            "ROC-AUC",
            "PR-AUC",
            "KS",
            "log-loss",
            "largest ε so far",
        ],
        rows,
        text_columns=(0, 2),
    )
    return Section("training", "Training rounds", body)
