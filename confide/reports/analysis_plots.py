"""Figures of a DP analysis page (``analysis.html``); each returns PNG bytes.

Built on the report's figure helpers (:mod:`confide.reports.plots`: Agg canvas, theme, legend
below the axes). Every bar carries its expected 95% error as an error bar; heat-map cells share
one count error, stated in the title. Labels the plotting font cannot draw (e.g. Chinese
province names on a machine without CJK fonts) are replaced by their row number in the table
beside the figure, so no glyph is ever missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font

from .plots import _DPI, _figure, _legend_below, _png, _themed

__all__ = [
    "Bar",
    "bars_png",
    "drawable",
    "grouped_bars_png",
    "rfm_heatmap_png",
    "segments_png",
]

Bar = tuple[str, float | None, float | None]  # (label, value, expected 95% error)

_BLUE = "#1f5fbf"
_NODE_COLOURS = ("#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")


def drawable(labels: Sequence[str]) -> bool:
    """True when the plotting font has a glyph for every character of every label."""
    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    return all(font.get_char_index(ord(ch)) for label in labels for ch in label)


def _labels(labels: Sequence[str]) -> list[str]:
    return list(labels) if drawable(labels) else [f"#{i + 1}" for i in range(len(labels))]


def _values(bars: Sequence[Bar]) -> tuple[np.ndarray, np.ndarray]:
    ys = np.array([np.nan if v is None else float(v) for _, v, _ in bars])
    es = np.array([0.0 if e is None else float(e) for _, _, e in bars])
    return ys, es


def _bar_axes(ax, bars: Sequence[Bar], colour: str, title: str, ylabel: str) -> None:
    ys, es = _values(bars)
    x = np.arange(len(bars))
    ax.bar(x, ys, 0.7, yerr=es, capsize=4, color=colour, ecolor="black", label="DP release")
    ax.set_xticks(x, _labels([b[0] for b in bars]), rotation=30 if len(bars) > 5 else 0)
    ax.set(title=title, ylabel=ylabel)
    ax.axhline(0, color="#888888", linewidth=0.8)
    ax.grid(alpha=0.3, axis="y")


@_themed
def bars_png(bars: Sequence[Bar], title: str, ylabel: str, xlabel: str) -> bytes:
    """One bar per group (a federated DP release) with its 95% error bar."""
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    _bar_axes(ax, bars, _BLUE, title, ylabel)
    ax.set_xlabel(xlabel + "   (error bars: expected 95% error of the DP noise)")
    return _png(fig)


@_themed
def grouped_bars_png(
    groups: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[tuple[float | None, float | None]]]],
    ylabel: str,
) -> bytes:
    """One panel per entry of ``panels`` (its title); in each, bars per group with one colour
    per series (e.g. per node), each with its 95% error bar."""
    fig = _figure(3.8 * len(panels) + 0.6, 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    x = np.arange(len(groups))
    labels = _labels(groups)
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        width = 0.8 / max(1, len(series))
        for i, (name, points) in enumerate(series.items()):
            ys, es = _values([("", v, e) for v, e in points])
            offset = (i - (len(series) - 1) / 2) * width
            colour = _NODE_COLOURS[i % len(_NODE_COLOURS)]
            ax.bar(x + offset, ys, width * 0.95, yerr=es, capsize=3, color=colour, label=name)
        ax.set_xticks(x, labels, rotation=30 if len(groups) > 3 else 0)
        ax.set(title=title)
        ax.axhline(0, color="#888888", linewidth=0.8)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel(ylabel)
    fig.suptitle("error bars: expected 95% error of the DP noise", fontsize=9)
    _legend_below(fig, axes[0], ncol=min(4, max(1, len(panels[next(iter(panels))]))))
    return _png(fig)


@_themed
def segments_png(
    segments: Sequence[str],
    size: Sequence[Bar],
    rate: Sequence[Bar],
    value: Sequence[Bar],
    rate_label: str,
    value_label: str,
) -> bytes:
    """Segment profiles side by side: DP size, DP outcome rate, DP average value."""
    fig = _figure(11.0, 4.0)
    axes = fig.subplots(1, 3)
    _bar_axes(axes[0], size, _BLUE, "Segment size (customers)", "customers")
    _bar_axes(axes[1], rate, "#d95f02", f"{rate_label} rate", "rate")
    _bar_axes(axes[2], value, "#1b9e77", f"Average {value_label}", value_label)
    for ax in axes:
        ax.set_xticks(np.arange(len(segments)), list(segments))
        ax.set_xlabel("segment")
    fig.suptitle("DP k-means segments (error bars: expected 95% error)")
    return _png(fig)


@_themed
def rfm_heatmap_png(cube: np.ndarray, error95: float | None) -> bytes:
    """RFM cell counts: one recency x frequency heat map per monetary score (shared colours),
    each cell annotated with its DP count."""
    n_m = cube.shape[2]
    # a fixed layout: constrained layout would measure every one of the cell labels
    fig = Figure(figsize=(2.6 * n_m + 1.0, 3.4), dpi=_DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.9, bottom=0.16, top=0.8, wspace=0.08)
    axes = np.atleast_1d(fig.subplots(1, n_m, sharey=True))
    finite = cube[np.isfinite(cube)]
    top = float(finite.max()) if finite.size else 1.0
    image = None
    for m, ax in enumerate(axes):
        grid = cube[:, :, m]
        image = ax.imshow(
            grid,
            cmap="Blues",
            vmin=min(0.0, float(finite.min(initial=0))),
            vmax=top,
            origin="lower",
            aspect="auto",
        )
        for (r, f), v in np.ndenumerate(grid):
            if np.isfinite(v):
                colour = "white" if v > 0.6 * top else "black"
                ax.text(
                    f,
                    r,
                    f"{v:.0f}" if abs(v) >= 0.5 else "0",  # never "-0"
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
        ax.set_xticks(range(grid.shape[1]), [str(i + 1) for i in range(grid.shape[1])])
        ax.set_yticks(range(grid.shape[0]), [str(i + 1) for i in range(grid.shape[0])])
        ax.set(title=f"M score {m + 1}", xlabel="F score")
    axes[0].set_ylabel("R score")
    err = "n/a" if error95 is None else f"{error95:.1f}"
    fig.suptitle(f"RFM cell counts (DP; every cell ± {err} customers, 95%)")
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes((0.92, 0.16, 0.012, 0.64)), label="customers (DP)")
    return _png(fig)
