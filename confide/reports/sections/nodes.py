"""The Per-node vs global section: each node's gain from joining the federation."""

from __future__ import annotations

from .. import plots
from ..context import ReportContext
from ..context import fmt_num as _f
from ..context import fmt_signed as _signed
from ..html_page import Section, paragraph, side, table

__all__ = ["nodes"]


def nodes(ctx: ReportContext) -> Section:
    """Each node's ROC-AUC on its own test split: federated against training alone."""
    node_metrics = ctx.run.metrics.get("nodes", {})
    names = [n for n in ctx.run.node_names if n in node_metrics]
    fed = [node_metrics[n]["global_model_on_own_test"].get("roc_auc") for n in names]
    alone = [ctx.baseline_auc(f"local_only:{n}", "own") for n in names]
    series = {"federated model": fed}
    if any(a is not None for a in alone):
        series["node alone (local only)"] = alone
    glob = ctx.run.metrics.get("global", {}).get("roc_auc")
    body = (
        paragraph(
            "Each node's own held-out split, scored by the federated model and by a model the "
            "node trained alone with the same preprocessing and DP settings.",
            "lead",
        )
        + '<div class="figs">'
    )
    body += ctx.fig(
        "auc_per_node",
        lambda: plots.auc_per_node_png(names, series, glob),
        "Per-node ROC-AUC",
        "Bars start at 0.5 (random ranking).",
    )
    rows = []
    for n, f_auc, a_auc in zip(names, fed, alone, strict=True):
        gain = None if f_auc is None or a_auc is None else f_auc - a_auc
        rows.append(
            (n, _f(f_auc), _f(a_auc), _signed(gain), _f(ctx.baseline_auc(f"local_only:{n}")))
        )
    body += side(
        "<h3>ROC-AUC per node</h3>"
        + table(
            ["node", "federated, own test", "alone, own test", "gain", "alone, pooled test"],
            rows,
        )
        + paragraph(
            "A positive gain is what the node obtains by joining the federation; "
            "small nodes usually gain most."
        )
    )
    return Section("nodes", "Per-node vs global", body + "</div>")
