"""The Data section: row counts and label rates as each node reported them."""

from __future__ import annotations

from ..context import ReportContext
from ..context import fmt_int as _int
from ..context import fmt_num as _f
from ..html_page import Section, paragraph, table

__all__ = ["data"]


def data(ctx: ReportContext) -> Section:
    """Row counts and label rates per node, as the nodes reported them."""
    node_metrics = ctx.run.metrics.get("nodes", {})
    total = sum(int(m.get("rows", 0)) for m in node_metrics.values()) or 1
    rows = [
        (
            n,
            _int(m.get("rows")),
            f"{100 * m.get('rows', 0) / total:.1f}%",
            _int(m.get("train_rows")),
            _int(m.get("test_rows")),
            _f(m.get("positive_rate")),
            _f(m.get("global_model_on_own_test", {}).get("positive_rate")),
        )
        for n, m in node_metrics.items()
    ]
    glob = ctx.run.metrics.get("global", {})
    rows.append(
        ("pooled test set", "", "", "", _int(glob.get("n")), "", _f(glob.get("positive_rate")))
    )
    body = paragraph(
        f"Row counts and label rates (positive means {ctx.positive}) as each node "
        "reported them; no raw value leaves a node and none is shown here.",
        "lead",
    )
    body += table(
        [
            "node",
            "rows",
            "share of rows",
            "train rows",
            "test rows",
            "positive rate (train)",
            "positive rate (test)",
        ],
        rows,
    )
    return Section("data", "Data", body)
