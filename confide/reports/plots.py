"""The report's figures (matplotlib, Agg canvas, no global pyplot state); each returns PNG bytes.

Legends sit below the axes so they never cover a curve; every axis is labelled.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .curves import (
    calibration_curve,
    decile_table,
    gains_curve,
    ks_curve,
    pr_curve,
    roc_curve_from_histogram,
)

__all__ = [
    "auc_per_node_png",
    "calibration_png",
    "epsilon_png",
    "gains_lift_png",
    "ks_png",
    "model_label",
    "ordered_models",
    "pr_png",
    "privacy_utility_png",
    "roc_png",
    "rounds_png",
]

Histograms = Mapping[str, tuple[Sequence[float], Sequence[float]]]

_DPI = 110
_NODE_COLOURS = ("#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
_GLOBAL = "#1f5fbf"


def model_label(name: str) -> str:
    """Readable name of a model in curves.json / metrics.json."""
    if name == "global":
        return "federated (global model)"
    if name == "centralised":
        return "centralised, no DP"
    if name == "centralised_dp":
        return "centralised, DP"
    if name.startswith("local_only:"):
        return f"{name.split(':', 1)[1]} alone (local only)"
    return name


def _style(name: str, order: Sequence[str]) -> dict:
    if name == "global":
        return {"color": _GLOBAL, "linewidth": 2.4, "linestyle": "-", "zorder": 5}
    if name == "centralised":
        return {"color": "black", "linewidth": 1.4, "linestyle": "--", "zorder": 4}
    if name == "centralised_dp":
        return {"color": "#777777", "linewidth": 1.4, "linestyle": "-.", "zorder": 3}
    locals_ = [n for n in order if n.startswith("local_only:")]
    idx = locals_.index(name) if name in locals_ else 0
    return {
        "color": _NODE_COLOURS[idx % len(_NODE_COLOURS)],
        "linewidth": 1.4,
        "linestyle": ":",
        "zorder": 2,
    }


_RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9.5,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
}


def _themed(make):
    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_RC):
            return make(*args, **kwargs)

    return wrapper


def _figure(width: float = 5.4, height: float = 4.8) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _legend_below(fig: Figure, *axes, ncol: int = 1) -> None:
    """One legend for the whole figure, outside and below the axes (never over a curve)."""
    handles, labels = [], []
    for ax in axes:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False)


def ordered_models(hists: Histograms) -> list[str]:
    """Model names in display order: global, centralised, centralised DP, then the rest."""
    first = [n for n in ("global", "centralised", "centralised_dp") if n in hists]
    return first + [n for n in hists if n not in first]


@_themed
def roc_png(hists: Histograms) -> bytes:
    """ROC curves of every model on the pooled test set, AUC in the legend."""
    fig = _figure(5.4, 5.6)
    ax = fig.add_subplot()
    order = ordered_models(hists)
    for name in order:
        curve = roc_curve_from_histogram(*hists[name])
        ax.plot(
            curve.fpr,
            curve.tpr,
            label=f"{model_label(name)}  AUC {curve.auc:.3f}",
            **_style(name, order),
        )
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="random  AUC 0.500")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate (1 − specificity)",
        ylabel="True positive rate (recall)",
        title="ROC curve, pooled test set",
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def pr_png(hists: Histograms) -> bytes:
    """Precision-recall curves of every model, average precision in the legend."""
    fig = _figure(5.4, 5.6)
    ax = fig.add_subplot()
    order = ordered_models(hists)
    prevalence = None
    for name in order:
        curve = pr_curve(*hists[name])
        prevalence = curve.prevalence
        ax.plot(
            curve.recall,
            curve.precision,
            label=f"{model_label(name)}  AP {curve.average_precision:.3f}",
            **_style(name, order),
        )
    if prevalence is not None:
        ax.axhline(
            prevalence,
            color="#bbbbbb",
            linewidth=1,
            label=f"random (positive rate {prevalence:.3f})",
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Recall (share of positives found)",
        ylabel="Precision (flagged that are positive)",
        title="Precision-recall curve, pooled test set",
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def calibration_png(hists: Histograms, name: str = "global") -> bytes:
    """Reliability diagram of one model, with its score distribution underneath."""
    pos, neg = hists[name]
    cal = calibration_curve(pos, neg)
    fig = _figure(5.4, 5.4)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(grid[0])
    ax.plot([0, 1], [0, 1], color="#bbbbbb", linewidth=1, label="perfectly calibrated")
    ax.plot(
        cal.mean_predicted,
        cal.observed_rate,
        marker="o",
        color=_GLOBAL,
        linewidth=2,
        label=f"{model_label(name)}  (ECE {cal.ece:.3f})",
    )
    top = max(float(cal.mean_predicted.max()), float(cal.observed_rate.max()))
    lim = min(1.0, max(0.2, top * 1.1))
    ax.set(
        xlim=(0, lim),
        ylim=(0, lim),
        ylabel="Observed positive rate",
        title="Calibration (10 groups of about equal size)",
    )
    ax.tick_params(labelbottom=False)
    ax.grid(alpha=0.3)
    hist_ax = fig.add_subplot(grid[1], sharex=ax)
    bins = len(pos)
    centers = (np.arange(bins) + 0.5) / bins
    total = np.asarray(pos, dtype=float) + np.asarray(neg, dtype=float)
    hist_ax.bar(centers, total, width=1.0 / bins, color="#9db7e0")
    hist_ax.set(xlabel="Predicted probability", ylabel="Rows")
    hist_ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def ks_png(hists: Histograms, name: str = "global") -> bytes:
    """Cumulative score distributions of positives and negatives, KS marked."""
    curve = ks_curve(*hists[name])
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(
        curve.thresholds,
        curve.cdf_neg,
        color="#1b9e77",
        linewidth=2,
        label="negatives (cumulative share)",
    )
    ax.plot(
        curve.thresholds,
        curve.cdf_pos,
        color="#d95f02",
        linewidth=2,
        label="positives (cumulative share)",
    )
    i = int(np.argmax(curve.cdf_neg - curve.cdf_pos))
    ax.vlines(
        curve.ks_threshold,
        curve.cdf_pos[i],
        curve.cdf_neg[i],
        color="black",
        linewidth=1.5,
        linestyle="--",
        label=f"KS = {curve.ks:.3f} at score {curve.ks_threshold:.3f}",
    )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Score threshold (predicted probability)",
        ylabel="Share of rows scored at or below threshold",
        title=f"KS curve, {model_label(name)}",
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def gains_lift_png(hists: Histograms, name: str = "global") -> bytes:
    """Cumulative gains (all models) and lift by decile (one model), side by side."""
    fig = _figure(11.0, 4.9)
    gains_ax, lift_ax = fig.subplots(1, 2)
    order = ordered_models(hists)
    prevalence = 0.0
    for model in order:
        g = gains_curve(*hists[model])
        prevalence = g.prevalence
        gains_ax.plot(
            g.population * 100, g.captured * 100, label=model_label(model), **_style(model, order)
        )
    gains_ax.plot([0, 100], [0, 100], color="#bbbbbb", linewidth=1, label="random targeting")
    gains_ax.set(
        xlim=(0, 100),
        ylim=(0, 101),
        xlabel="Customers targeted, highest score first (%)",
        ylabel="Positives captured (%)",
        title="Cumulative gains, pooled test set",
    )
    gains_ax.grid(alpha=0.3)
    table = decile_table(*hists[name])
    deciles = [r.decile for r in table]
    lift_ax.bar(deciles, [r.lift for r in table], color="#9db7e0", label="lift in decile")
    lift_ax.plot(
        deciles,
        [r.cumulative_lift for r in table],
        color=_GLOBAL,
        marker="o",
        linewidth=2,
        label="cumulative lift",
    )
    lift_ax.axhline(1.0, color="#bbbbbb", linewidth=1, label="random (lift 1)")
    lift_ax.set(
        xticks=deciles,
        xlabel="Decile (1 = highest scores)",
        ylabel="Lift (positive rate ÷ overall rate)",
        title=f"Lift by decile, {model_label(name)} (rate {prevalence:.3f})",
    )
    lift_ax.grid(alpha=0.3, axis="y")
    _legend_below(fig, gains_ax, lift_ax, ncol=3)
    return _png(fig)


@_themed
def rounds_png(
    rounds: Sequence[int],
    metrics: Mapping[str, Sequence[float | None]],
    centralised_auc: float | None = None,
) -> bytes:
    """Global metrics per round: ranking metrics (left) and losses (right)."""
    fig = _figure(11.0, 4.6)
    rank_ax, loss_ax = fig.subplots(1, 2)

    def series(key):
        return [np.nan if v is None else v for v in metrics.get(key, [])]

    for key, label, colour in (
        ("roc_auc", "ROC-AUC", _GLOBAL),
        ("pr_auc", "PR-AUC", "#d95f02"),
        ("ks", "KS", "#1b9e77"),
    ):
        if key in metrics:
            rank_ax.plot(rounds, series(key), marker="o", color=colour, linewidth=2, label=label)
    if centralised_auc is not None:
        rank_ax.axhline(
            centralised_auc,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"centralised ROC-AUC, no DP ({centralised_auc:.3f})",
        )
    seen = [v for k in ("roc_auc", "pr_auc", "ks") for v in series(k) if np.isfinite(v)]
    seen += [] if centralised_auc is None else [centralised_auc]
    if seen:
        rank_ax.set_ylim(max(0.0, min(seen) - 0.03), min(1.0, max(seen) + 0.03))
    rank_ax.set(
        xticks=list(rounds),
        xlabel="Round",
        ylabel="Metric on pooled test set",
        title="Ranking metrics per round (higher is better)",
    )
    rank_ax.grid(alpha=0.3)
    for key, label, colour in (("log_loss", "log-loss", "#7570b3"), ("brier", "Brier", "#e7298a")):
        if key in metrics:
            loss_ax.plot(rounds, series(key), marker="o", color=colour, linewidth=2, label=label)
    loss_ax.set(
        xticks=list(rounds),
        xlabel="Round",
        ylabel="Loss on pooled test set",
        title="Losses per round (lower is better)",
    )
    loss_ax.grid(alpha=0.3)
    _legend_below(fig, rank_ax, loss_ax, ncol=3)
    return _png(fig)


@_themed
def epsilon_png(
    rounds: Sequence[int],
    epsilon: Mapping[str, Sequence[float | None]],
    budgets: Mapping[str, float | None],
) -> bytes:
    """Cumulative ε per node per round against each node's per-run budget."""
    fig = _figure()
    ax = fig.add_subplot()
    top = 0.0
    for i, (node, values) in enumerate(epsilon.items()):
        ys = [np.nan if v is None else v for v in values]
        colour = _NODE_COLOURS[i % len(_NODE_COLOURS)]
        ax.plot(rounds, ys, marker="o", color=colour, linewidth=2, label=f"{node}: ε spent")
        finite = [v for v in ys if np.isfinite(v)]
        top = max([top, *finite])
    by_budget: dict[float, list[str]] = {}
    for node, budget in budgets.items():
        if budget is not None:
            by_budget.setdefault(float(budget), []).append(node)
    node_list = list(epsilon)
    for budget, nodes in sorted(by_budget.items()):
        colour = "black"
        if len(nodes) == 1 and nodes[0] in node_list:
            colour = _NODE_COLOURS[node_list.index(nodes[0]) % len(_NODE_COLOURS)]
        ax.axhline(
            budget,
            color=colour,
            linestyle="--",
            linewidth=1.2,
            label=f"budget per run ({', '.join(nodes)}): ε {budget:g}",
        )
        top = max(top, budget)
    ax.set(
        xticks=list(rounds),
        ylim=(0, max(top * 1.15, 0.1)),
        xlabel="Round",
        ylabel="Cumulative ε spent in this run",
        title="Privacy budget spent per node",
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def auc_per_node_png(
    nodes: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    pooled_global: float | None = None,
) -> bytes:
    """Grouped bars: each node's test ROC-AUC under each model, values written on the bars."""
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(nodes))
    width = 0.8 / max(1, len(series))
    colours = (_GLOBAL, "#9aa4b2", "#1b9e77", "#7570b3")
    values_seen: list[float] = []
    for i, (label, values) in enumerate(series.items()):
        ys = [np.nan if v is None else float(v) for v in values]
        offset = (i - (len(series) - 1) / 2) * width
        bars = ax.bar(x + offset, ys, width * 0.95, color=colours[i % len(colours)], label=label)
        for bar, y in zip(bars, ys, strict=True):
            if np.isfinite(y):
                values_seen.append(y)
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    y + 0.004,
                    f"{y:.3f}",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    if pooled_global is not None:
        ax.axhline(
            pooled_global,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"federated model, pooled test ({pooled_global:.3f})",
        )
        values_seen.append(pooled_global)
    top = max(values_seen) if values_seen else 1.0
    ax.set(
        xticks=x,
        xticklabels=list(nodes),
        ylim=(0.5, min(1.0, top + 0.06)),
        xlabel="Node (each bar: that node's own held-out test split)",
        ylabel="ROC-AUC (0.5 = random)",
        title="Per-node ROC-AUC: federated vs alone",
    )
    ax.grid(alpha=0.3, axis="y")
    _legend_below(fig, ax)
    return _png(fig)


@_themed
def privacy_utility_png(points: Sequence[Mapping]) -> bytes:
    """ROC-AUC against ε over several runs, with centralised and local-only references.

    Each point: ``label``, ``epsilon`` (None when DP was off), ``global``, and optionally
    ``centralised``, ``centralised_dp``, ``local_only`` ({node: AUC}) and ``series`` (the other
    settings of a sweep, e.g. ``partition=dirichlet``: one federated curve per series; the
    centralised-DP and local-only references are drawn only when there is one series). DP-off
    runs are drawn as separate markers at the right, never joined to the DP curve; ε is on a
    log axis when the runs span a factor of 4 or more. Used by ``confide compare`` and by the
    sweep's ``privacy_utility.png``.
    """
    fig = _figure(5.6, 5.0)
    ax = fig.add_subplot()
    dp_runs = sorted(
        (p for p in points if p.get("epsilon") is not None), key=lambda p: p["epsilon"]
    )
    off_runs = [p for p in points if p.get("epsilon") is None]
    finite = [float(p["epsilon"]) for p in dp_runs]
    log = bool(finite) and min(finite) > 0 and max(finite) / min(finite) >= 4
    if log:
        ax.set_xscale("log")
    off_x = (max(finite) * (2.0 if log else 1.25) if finite else 1.0) if off_runs else None

    def draw(key, label, style, getter=None, series=None):
        get = getter or (lambda p: p.get(key))
        mine = (lambda p: (p.get("series") or "") == series) if series is not None else bool
        dp = [p for p in dp_runs if get(p) is not None and mine(p)]
        if dp:
            ax.plot([p["epsilon"] for p in dp], [get(p) for p in dp], label=label, **style)
        off = [get(p) for p in off_runs if get(p) is not None and mine(p)]
        if off:
            marker_style = {k: v for k, v in style.items() if k in ("color", "marker", "zorder")}
            ax.plot(
                [off_x] * len(off),
                off,
                linestyle="none",
                markersize=7,
                label=None if dp else label,
                **marker_style,
            )

    series = list(dict.fromkeys(p.get("series") or "" for p in points))
    for k, name in enumerate(series):
        draw(
            "global",
            f"federated (global model) {name}".strip(),
            {
                "color": _GLOBAL if k == 0 else _NODE_COLOURS[(k - 1) % len(_NODE_COLOURS)],
                "marker": "o",
                "linewidth": 2.4,
                "zorder": 5,
            },
            series=name if len(series) > 1 else None,
        )
    if len(series) == 1:
        draw(
            "centralised_dp",
            "centralised, DP (same ε)",
            {"color": "#777777", "marker": "s", "linestyle": "-.", "linewidth": 1.4},
        )
    central = [p["centralised"] for p in points if p.get("centralised") is not None]
    if central:
        ref = float(np.median(central))
        ax.axhline(
            ref,
            color="black",
            linestyle="--",
            linewidth=1.4,
            label=f"centralised, no DP ({ref:.3f})",
        )
    local_nodes: list[str] = []
    for p in points if len(series) == 1 else ():
        local_nodes += [n for n in (p.get("local_only") or {}) if n not in local_nodes]
    for i, node in enumerate(local_nodes):
        draw(
            None,
            f"{node} alone (local only)",
            {
                "color": _NODE_COLOURS[i % len(_NODE_COLOURS)],
                "marker": "^",
                "linestyle": ":",
                "linewidth": 1.4,
            },
            getter=lambda p, node=node: (p.get("local_only") or {}).get(node),
        )
    ticks = sorted(set(finite))
    labels = [f"{t:g}" for t in ticks]
    if off_x is not None:
        ticks.append(off_x)
        labels.append("DP off")
        if finite:
            ax.axvline(
                (max(finite) * off_x) ** 0.5 if log else (max(finite) + off_x) / 2,
                color="#dddddd",
                linewidth=1,
            )
    if ticks:
        ax.set_xticks(ticks, labels)
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set(
        xlabel="ε per node per run (smaller is more private)",
        ylabel="ROC-AUC on the pooled test set",
        title="Privacy-utility trade-off",
    )
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, ncol=2)
    return _png(fig)
