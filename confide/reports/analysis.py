"""``analysis.html``: the page of a DP analysis (``confide analyze``, ``confide report RUN``).

Everything comes from ``analysis.json`` (the combined DP releases with their expected 95%
errors, per node and federated): segment profiles, the RFM heat map, grouped statistics as bars
with 95% error bars, single-number statistics, and the data-quality profile by node. Every
number is shown beside its expected error; the header states each part's epsilon, where noise
is added and that every number is a DP release. Built with the reports' page shell
(:mod:`~confide.reports.html_page`) and figure helpers; nothing is loaded from the network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from confide.core.errors import ConfideError
from confide.core.files import atomic_write_text, read_regular_file

from . import analysis_plots as plots
from .html_page import Section, bullets, figure, keyfigures, page, paragraph, side, table

__all__ = [
    "ANALYSIS_SECTIONS",
    "AnalysisReportError",
    "build_analysis_page",
    "is_analysis_run",
    "pm",
    "render_analysis_html",
    "write_analysis_report",
]

ANALYSIS_FILE = "analysis.json"
ANALYSIS_HTML = "analysis.html"
ANALYSIS_SECTIONS = ("about", "segments", "rfm", "groups", "statistics", "quality")
_MAX_BYTES = 64 * 1024 * 1024


class AnalysisReportError(ConfideError):
    """An analysis record cannot be rendered (missing, unreadable or malformed)."""


# --------------------------------------------------------------------------- numbers


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def pm(value: Any, error95: Any, percent: bool = False) -> str:
    """``value ± error``, both with the decimals that show the error to at least two
    significant digits (``percent``: both x100 with a % sign); ``n/a`` for a missing value."""
    v, e = _finite(value), _finite(error95)
    if v is None:
        return "n/a"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    v *= scale
    if e is None or e <= 0:
        return f"{v:,.4g}{unit} (error n/a)"
    e *= scale
    decimals = min(6, max(0, 1 - math.floor(math.log10(e))))
    return f"{v:,.{decimals}f} ± {e:,.{decimals}f}{unit}"


def _est(node: Any) -> tuple[float | None, float | None]:
    """(value, error95) of a released number ``{"value", "error95"}``."""
    if not isinstance(node, Mapping):
        return None, None
    return _finite(node.get("value")), _finite(node.get("error95"))


def _group_label(group: Any) -> str:
    if not isinstance(group, Mapping) or not group:
        return "all"
    return ", ".join(str(v) for v in group.values())


def _describe(q: Mapping[str, Any]) -> str:
    """``stat of column where filter``, e.g. ``mean of age where member_level in gold``."""
    what = f"{q.get('stat')}" + (f" of {q['column']}" if q.get("column") else "")
    where = q.get("where") if isinstance(q.get("where"), Mapping) else {}
    if where:
        what += " where " + "; ".join(f"{k} in {', '.join(map(str, v))}" for k, v in where.items())
    return what


# --------------------------------------------------------------------------- sections


class _Page:
    """Builds the sections of one analysis record; collects the figures' PNGs."""

    def __init__(self, analysis: Mapping[str, Any]) -> None:
        self.a = analysis
        self.nodes = [str(n) for n in analysis.get("nodes") or []]
        self.pngs: dict[str, bytes] = {}

    def fig(self, name: str, png: bytes, alt: str, caption: str, wide: bool = False) -> str:
        self.pngs[f"{name}.png"] = png
        return figure(png, alt, caption, wide)

    # ---- about: epsilon per part, noise, error model
    def about(self) -> Section:
        a = self.a
        parts = a.get("parts") or {}
        rows = [(str(k), f"{float(v):g}") for k, v in parts.items() if _finite(v) is not None]
        rows.append(("total per node", f"{float(a.get('epsilon', 0)):g}"))
        noise = a.get("noise") or {}
        lines = [
            "Every number on this page is a differentially private release, shown beside its "
            "expected 95% error (±: half-width of the 95% interval of the DP noise).",
            f"Where noise is added: {a.get('noise_placement', 'at each node (local DP)')}.",
            f"Mechanism: {a.get('mechanism', 'laplace')}; delta {a.get('delta', 0)}; at most "
            f"{a.get('max_rows_per_customer', '?')} row(s) per customer (enforced by each node).",
        ]
        lines += [f"Noise source at node {n}: {src}" for n, src in noise.items()]
        if a.get("error_model"):
            lines.append(f"Error model: {a['error_model']}.")
        charged = a.get("charged") or {}
        if charged:
            lines.append(
                "Charged to each node's budget ledger: "
                + ", ".join(f"{n} epsilon {float(e):g}" for n, e in charged.items())
            )
        cards = keyfigures(
            [
                (f"{float(a.get('epsilon', 0)):g}", "epsilon per node (whole analysis)"),
                (str(len(self.nodes)), "nodes"),
                (str(len(parts)), "parts, each with its own epsilon"),
            ]
        )
        body = cards + bullets(lines) + table(["part", "epsilon per node"], rows)
        if a.get("status") not in (None, "completed"):
            reasons = a.get("reasons") if isinstance(a.get("reasons"), Mapping) else {}
            body = (
                paragraph(
                    f"The analysis did not complete ({a.get('status')}): {a.get('message', '')}",
                    "bad",
                )
                + bullets([f"node {n}: {line}" for n, line in reasons.items()])
                + body
            )
        return Section("about", "About these numbers", body)

    # ---- segment profiles
    def segments(self) -> Section | None:
        seg = self.a.get("segments")
        if not isinstance(seg, Mapping) or not seg.get("federated"):
            return None
        features = [str(f) for f in seg.get("features") or []]
        outcome, value = str(seg.get("outcome") or "outcome"), str(seg.get("value") or "value")
        rows, size, rate, val, names = [], [], [], [], []
        centroids = seg.get("centroids") or []
        for i, s in enumerate(seg["federated"]):
            name = f"S{int(s.get('segment', i)) + 1}"
            names.append(name)
            c = centroids[i] if i < len(centroids) and isinstance(centroids[i], Mapping) else {}
            sv, se = _est(s.get("size"))
            rv, re_ = _est(s.get("outcome_rate"))
            vv, ve = _est(s.get("average_value"))
            size.append((name, sv, se))
            rate.append((name, rv, re_))
            val.append((name, vv, ve))
            rows.append(
                (
                    name,
                    *(
                        f"{float(c[f]):,.1f}" if _finite(c.get(f)) is not None else "n/a"
                        for f in features
                    ),
                    pm(sv, se),
                    pm(rv, re_, percent=True),
                    pm(vv, ve),
                )
            )
        head = [
            "segment",
            *(f"centroid {f}" for f in features),
            "size (customers)",
            f"{outcome} rate",
            f"average {value}",
        ]
        png = plots.segments_png(names, size, rate, val, outcome, value)
        note = paragraph(
            f"DP k-means (k={seg.get('k')}, {seg.get('iterations')} iterations) on "
            f"{', '.join(features)}: centroids from noisy per-cluster counts and sums; sizes, "
            f"{outcome} rates and average {value} are DP releases. Each node keeps its "
            "customers' segment assignments; they never leave it. Centroids are post-processed "
            "DP releases (their error is in the sizes and sums they come from).",
            "lead",
        )
        body = note + self.fig("segments", png, "segment profiles", "Segment profiles", True)
        body += table(head, rows)
        return Section("segments", "Segment profiles", body)

    # ---- RFM
    def rfm(self) -> Section | None:
        rfm = self.a.get("rfm")
        fed = rfm.get("federated") if isinstance(rfm, Mapping) else None
        if not isinstance(fed, Mapping) or not fed.get("cells"):
            return None
        cells = [c for c in fed["cells"] if isinstance(c, Mapping)]
        dims = [max(int(c.get(k, 0)) for c in cells) for k in ("r", "f", "m")]
        cube = np.full(dims, np.nan)
        errors = []
        for c in cells:
            v, e = _est(c.get("count"))
            cube[int(c["r"]) - 1, int(c["f"]) - 1, int(c["m"]) - 1] = np.nan if v is None else v
            if e is not None:
                errors.append(e)
        err = max(errors) if errors else None
        png = plots.rfm_heatmap_png(cube, err)
        body = paragraph(
            "RFM scores come from the declared bins of recency, frequency and monetary value; "
            "each cell's customer count and monetary value are DP releases (noisy counts can be "
            "negative: they are not clipped, so sums over cells stay unbiased).",
            "lead",
        )
        body += self.fig("rfm", png, "RFM heat map", "RFM cell counts (federated)", True)
        marg = []
        for dim in ("recency", "frequency", "monetary"):
            for s in fed.get(dim) or []:
                marg.append((dim, str(s.get("score")), pm(*_est(s.get("count")))))
        top = sorted(cells, key=lambda c: -(_est(c.get("count"))[0] or -math.inf))[:10]
        top_rows = [
            (
                f"R{c['r']} F{c['f']} M{c['m']}",
                pm(*_est(c.get("count"))),
                pm(*_est(c.get("monetary_sum"))),
                pm(*_est(c.get("average_monetary"))),
            )
            for c in top
        ]
        body += "<h3>Score counts</h3>" + table(["dimension", "score", "customers"], marg, (0,))
        body += "<h3>Largest cells</h3>" + table(
            ["cell", "customers", "monetary sum", "average monetary"], top_rows
        )
        return Section("rfm", "RFM heat map", body)

    # ---- grouped queries (regional bars) and histograms
    def groups(self) -> Section | None:
        body = ""
        for name, q in (self.a.get("queries") or {}).items():
            if not isinstance(q, Mapping):
                continue
            fed = [r for r in q.get("federated") or [] if isinstance(r, Mapping)]
            if q.get("stat") == "histogram":
                labels = [
                    (f"{_group_label(r.get('group'))} " if r.get("group") else "")
                    + (
                        f"{r['bin'][0]:g}-{r['bin'][1]:g}"
                        if isinstance(r.get("bin"), list)
                        else "?"
                    )
                    for r in fed
                ]
                xlabel = f"{q.get('column')} bin"
            elif q.get("group_by") and q.get("stat") in ("count", "sum", "mean", "variance"):
                labels = [_group_label(r.get("group")) for r in fed]
                xlabel = ", ".join(q["group_by"])
            else:
                continue
            bars = [(lab, *_est(r)) for lab, r in zip(labels, fed, strict=True)]
            what = _describe(q)
            title = f"{name}: {what} (epsilon {float(q.get('epsilon', 0)):g})"
            png = plots.bars_png(bars, title, what, xlabel)
            per_node = q.get("per_node") or {}
            head = ["#", xlabel, "federated", *(f"node {n}" for n in per_node)]
            rows = []
            for i, (lab, r) in enumerate(zip(labels, fed, strict=True)):
                cells = [pm(*_est(r))]
                for n_rows in per_node.values():
                    n_r = n_rows[i] if i < len(n_rows) else None
                    cells.append(pm(*_est(n_r)))
                rows.append((str(i + 1), lab, *cells))
            fig = self.fig(f"query-{name}", png, name, title)
            grid = table(head, rows, (0, 1))
            narrow = max(len(c) for row in rows for c in row) <= 14  # fits beside the figure
            body += f"<h3>{escape(str(name))}</h3>"
            body += f'<div class="figs">{fig}{side(grid)}</div>' if narrow else fig + grid
        if not body:
            return None
        lead = paragraph(
            "Grouped statistics: group keys come only from the declared categories; error bars "
            "and ± are the expected 95% error of the DP noise (federated: combined from the "
            "nodes' noisy releases).",
            "lead",
        )
        return Section("groups", "Regional and grouped statistics", lead + body)

    # ---- single numbers: means, variances, quantiles without groups
    def statistics(self) -> Section | None:
        rows = []
        for name, q in (self.a.get("queries") or {}).items():
            if not isinstance(q, Mapping) or q.get("stat") == "histogram":
                continue
            if q.get("group_by") and q.get("stat") != "quantiles":
                continue
            what = _describe(q)
            node_rows = list((q.get("per_node") or {}).values())
            for i, r in enumerate(q.get("federated") or []):
                label = what + (f" (q={r['q']:g})" if _finite(r.get("q")) is not None else "")
                if r.get("group"):
                    label += f" [{_group_label(r['group'])}]"
                per_node = [pm(*_est(nr[i] if i < len(nr) else None)) for nr in node_rows]
                eps = f"{float(q.get('epsilon', 0)):g}"
                rows.append((name, label, eps, pm(*_est(r)), *per_node))
        if not rows:
            return None
        per = [f"node {n}" for n in self.nodes]
        head = ["query", "statistic", "epsilon", "federated", *per][: len(rows[0])]
        return Section("statistics", "Single-number statistics", table(head, rows, (0, 1)))

    # ---- quality by node
    def quality(self) -> Section | None:
        qual = self.a.get("quality")
        per_node = qual.get("per_node") if isinstance(qual, Mapping) else None
        if not isinstance(per_node, Mapping) or not per_node:
            return None
        body = paragraph(
            "Data quality per node, released under DP: missing, out-of-bounds (outside the "
            "declared bounds or categories) and invalid-format rates per column, so data "
            "quality can be compared across organisations without seeing a row.",
            "lead",
        )
        columns = [str(c.get("column")) for c in next(iter(per_node.values())) or []]
        panels = {}
        for rate in ("missing", "out_of_bounds", "invalid_format"):
            series = {}
            for node, entries in per_node.items():
                by_col = {str(e.get("column")): e for e in entries or []}
                series[node] = [
                    _est((by_col.get(c) or {}).get("rates", {}).get(rate)) for c in columns
                ]
            panels[f"{rate.replace('_', '-')} rate"] = series
        png = plots.grouped_bars_png(columns, panels, "rate (share of the node's rows)")
        body += self.fig("quality", png, "quality by node", "Data-quality rates by node", True)
        rows = []
        for node, entries in per_node.items():
            for e in entries or []:
                rates = e.get("rates") or {}
                rows.append(
                    (
                        node,
                        str(e.get("column")),
                        pm(*_est(e.get("rows"))),
                        *(
                            pm(*_est(rates.get(r)), percent=True)
                            for r in ("missing", "out_of_bounds", "invalid_format")
                        ),
                    )
                )
        head = ["node", "column", "rows", "missing", "out of bounds", "invalid format"]
        body += table(head, rows, (0, 1))
        return Section("quality", "Data quality by node", body)


def build_analysis_page(analysis: Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
    """The page's HTML and its figures (``{file name: PNG bytes}``) for an analysis record."""
    if not isinstance(analysis, Mapping) or not isinstance(analysis.get("parts"), Mapping):
        raise AnalysisReportError(
            "analysis record: field 'parts' is missing or not a mapping (rule: analysis.json)"
        )
    p = _Page(analysis)
    makers = (p.about, p.segments, p.rfm, p.groups, p.statistics, p.quality)
    shown = [s for s in (make() for make in makers) if s is not None]
    parts = ", ".join(f"{k} {float(v):g}" for k, v in analysis["parts"].items())
    subtitle = (
        f"Analysis {analysis.get('analysis', '?')}"
        + (f", run {analysis['run_id']}" if analysis.get("run_id") else "")
        + f" over {len(p.nodes)} node(s): {', '.join(p.nodes)}\n"
        f"Differentially private releases: epsilon {float(analysis.get('epsilon', 0)):g} per "
        f"node (parts: {parts}); noise added at each node before anything leaves it\n"
        "Every number is shown with its expected 95% error (±)"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = page(
        f"DP analysis: {analysis.get('analysis', '?')}",
        subtitle,
        shown,
        f"Generated by Confide on {stamp} from analysis.json (DP releases only: no rows, no "
        "ids, no segment assignments); regenerate with `confide report RUN_DIR`.",
    )
    return html, p.pngs


def render_analysis_html(analysis: Mapping[str, Any], out_path: str | Path) -> Path:
    """Write ``analysis.html`` for an analysis record (the dict of ``analysis.json``)."""
    html, _ = build_analysis_page(analysis)
    out = Path(out_path)
    atomic_write_text(out, html)
    return out


def is_analysis_run(run_dir: str | Path) -> bool:
    """True when ``run_dir`` holds an analysis (``analysis.json``), not a training run."""
    return (Path(run_dir) / ANALYSIS_FILE).is_file()


def write_analysis_report(run_dir: str | Path) -> Path:
    """Regenerate ``analysis.html`` of an analysis run directory from its ``analysis.json``."""
    run_dir = Path(run_dir)
    source = run_dir / ANALYSIS_FILE
    try:
        raw = read_regular_file(source, "analysis record", max_bytes=_MAX_BYTES)
        record = json.loads(raw.decode("utf-8"))
    except ConfideError as exc:
        raise AnalysisReportError(str(exc)) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AnalysisReportError(
            f"{source}: not valid JSON ({type(exc).__name__}) (rule: analysis.json)"
        ) from None
    return render_analysis_html(record, run_dir / ANALYSIS_HTML)
