"""The coordinator's side: sum the nodes' noisy releases and report each number's 95% error.

The coordinator sees only noisy vectors and their noise scales (never a row or an id). It sums
them per component (the federated release) and estimates every statistic per node and
federated, with the expected 95% error computed from the known noise scales
(:mod:`confide.analytics.estimates`). Group keys, bins and RFM cells come from the spec's
declared categories and edges.

Output (plain JSON): ``queries.<name>.federated`` and ``.per_node.<node>`` are lists of rows
``{"group": {column: category}, "value": v, "error95": e}`` (plus ``bin`` for histograms,
``q`` and ``interval95`` for quantiles); ``rfm`` has ``cells`` and per-dimension score rows;
``quality`` has per-column rates; ``segments`` (added by the k-means plan) is
:func:`segments_summary`'s dict. A value is None when its noisy denominator is not positive.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .estimates import (
    linear_error,
    mean_estimate,
    quantile_estimate,
    rate,
    ratio,
    variance_estimate,
)
from .kmeans import kmeans_update, segments_summary
from .node import RELEASE_FORMAT, quantile_edges
from .prepare import STATUS_NAMES, AnalysisDataError
from .received import component
from .spec import AnalysisSpec, Query

__all__ = [
    "ANALYSIS_FORMAT",
    "NOISE_PLACEMENT",
    "combine_releases",
    "kmeans_update",
    "segments_summary",
]

ANALYSIS_FORMAT = "confide-analysis/1"
NOISE_PLACEMENT = (
    "local: each node adds Laplace noise to its own release before it leaves the node; the "
    "coordinator sums noisy releases (a node's guarantee does not depend on the coordinator)"
)
ERROR_MODEL = (
    "error95: 95% half-width of the noise of each number, from the known Laplace scales "
    "(exact for counts and sums, first-order delta method for means, variances and rates, "
    "CDF inversion plus half a bin for quantiles); clamping to the declared bounds and "
    "sampling variation are not included"
)


class _Comp:
    """One component summed over some nodes: values and each node's scale."""

    def __init__(self, releases: dict[str, Any], path: tuple[str, ...], length: int) -> None:
        vectors, self.scales = [], []
        for node, rel in releases.items():
            values, scale = component(node, rel, path, length)
            vectors.append(values)
            self.scales.append(scale)
        self.values = np.sum(vectors, axis=0)

    def est(self, i: int) -> dict[str, float]:
        return {"value": float(self.values[i]), "error95": linear_error(self.scales)}


def _groups(spec: AnalysisSpec, q: Query) -> list[dict[str, str]]:
    cats = [spec.columns[c].categories or () for c in q.group_by]
    return [dict(zip(q.group_by, combo, strict=True)) for combo in itertools.product(*cats)]


def _query_rows(spec: AnalysisSpec, q: Query, rels: dict[str, Any]) -> list[dict[str, Any]]:
    path = ("queries", q.name, "components")
    groups = _groups(spec, q)
    n = len(groups)
    rows: list[dict[str, Any]] = []
    if q.stat in ("count", "sum"):
        comp = _Comp(rels, (*path, q.stat), n)
        return [{"group": g, **comp.est(i)} for i, g in enumerate(groups)]
    decl = spec.columns[str(q.column)]
    if q.stat in ("mean", "variance"):
        cnt = _Comp(rels, (*path, "count"), n)
        s = _Comp(rels, (*path, "centred_sum"), n)
        center = (decl.min + decl.max) / 2  # type: ignore[operator]
        s2 = _Comp(rels, (*path, "centred_sum_sq"), n) if q.stat == "variance" else None
        for i, g in enumerate(groups):
            if q.stat == "mean":
                v, e = mean_estimate(
                    cnt.values[i], s.values[i], center, decl.min, decl.max, cnt.scales, s.scales
                )
            else:
                assert s2 is not None
                half = (decl.max - decl.min) / 2  # type: ignore[operator]
                v, e = variance_estimate(
                    cnt.values[i],
                    s.values[i],
                    s2.values[i],
                    half,
                    cnt.scales,
                    s.scales,
                    s2.scales,
                )
            rows.append({"group": g, "value": v, "error95": e})
        return rows
    edges = list(q.bins if q.stat == "histogram" else quantile_edges(spec, q))  # type: ignore[arg-type]
    nb = len(edges) - 1
    comp = _Comp(rels, (*path, "count"), n * nb)
    for i, g in enumerate(groups):
        block = comp.values[i * nb : (i + 1) * nb]
        if q.stat == "histogram":
            rows += [
                {"group": g, "bin": [edges[b], edges[b + 1]], **comp.est(i * nb + b)}
                for b in range(nb)
            ]
        else:
            for qq in q.q or ():
                rows.append(
                    {"group": g, "q": qq, **quantile_estimate(block, edges, qq, comp.scales)}
                )
    return rows


def _rfm_rows(spec: AnalysisSpec, rels: dict[str, Any]) -> dict[str, Any]:
    rfm = spec.rfm
    assert rfm is not None
    sizes = tuple(len(d.bins) - 1 for d in rfm.dimensions().values())
    cells_n = int(np.prod(sizes))
    count = _Comp(rels, ("rfm", "components", "count"), cells_n)
    money = _Comp(rels, ("rfm", "components", "monetary_sum"), cells_n)
    cells = []
    for i, (r, f, m) in enumerate(itertools.product(*(range(n) for n in sizes))):
        n, v = count.values[i], money.values[i]
        avg = ratio(v, n)
        avg_err = None
        if avg is not None:
            avg_err = linear_error(
                [b / n for b in money.scales] + [abs(avg) / n * b for b in count.scales]
            )
        cells.append(
            {
                "r": r + 1,
                "f": f + 1,
                "m": m + 1,
                "count": count.est(i),
                "monetary_sum": money.est(i),
                "average_monetary": {"value": avg, "error95": avg_err},
            }
        )
    cube = count.values.reshape(sizes)
    out: dict[str, Any] = {"cells": cells}
    for axis, key in enumerate(("recency", "frequency", "monetary")):
        others = tuple(a for a in range(3) if a != axis)
        per_score = cube.sum(axis=others)
        n_cells = int(np.prod([sizes[a] for a in others]))
        err = linear_error(count.scales * n_cells)
        out[key] = [
            {"score": s + 1, "count": {"value": float(per_score[s]), "error95": err}}
            for s in range(sizes[axis])
        ]
    return out


def _quality_rows(spec: AnalysisSpec, rels: dict[str, Any]) -> list[dict[str, Any]]:
    qual = spec.quality
    assert qual is not None
    statuses = STATUS_NAMES
    ns = len(statuses)
    comp = _Comp(rels, ("quality", "components", "count"), ns * len(qual.columns))
    rows = []
    for ci, col in enumerate(qual.columns):
        block = comp.values[ci * ns : (ci + 1) * ns]
        total = float(block.sum())
        rates: dict[str, Any] = {}
        for si, status in enumerate(statuses[1:], start=1):
            r = rate(block[si], total)
            err = None
            if r is not None:  # rate = c_s / T: d rate = dc_s (1 - r)/T - Σ_{o != s} dc_o r/T
                scales = [abs(1 - r) / total * b for b in comp.scales]
                scales += [abs(r) / total * b for b in comp.scales] * (ns - 1)
                err = linear_error(scales)
            rates[status] = {"value": r, "error95": err}
        rows.append(
            {
                "column": col,
                "rows": {"value": total, "error95": linear_error(comp.scales * ns)},
                "rates": rates,
            }
        )
    return rows


def _estimates(spec: AnalysisSpec, rels: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"queries": {q.name: _query_rows(spec, q, rels) for q in spec.queries}}
    if spec.rfm is not None:
        out["rfm"] = _rfm_rows(spec, rels)
    if spec.quality is not None:
        out["quality"] = _quality_rows(spec, rels)
    return out


def _check(spec: AnalysisSpec, node: str, rel: dict[str, Any]) -> None:
    if not isinstance(rel, dict) or rel.get("format") != RELEASE_FORMAT:
        raise AnalysisDataError(
            f"release of node '{node}': not a {RELEASE_FORMAT} release (rule ANALYSIS-RELEASE)"
        )
    if rel.get("analysis") != spec.name:
        raise AnalysisDataError(
            f"release of node '{node}': for another analysis (rule ANALYSIS-RELEASE)"
        )


def combine_releases(spec: AnalysisSpec, releases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per-node and federated estimates with 95% errors from the nodes' noisy releases."""
    if not releases:
        raise AnalysisDataError(f"analysis '{spec.name}': no node released anything")
    for node, rel in releases.items():
        _check(spec, node, rel)
    fed = _estimates(spec, releases)
    per_node = {node: _estimates(spec, {node: rel}) for node, rel in releases.items()}
    out: dict[str, Any] = {
        "format": ANALYSIS_FORMAT,
        "analysis": spec.name,
        "spec": spec.to_wire(),
        "epsilon": spec.epsilon,
        "delta": spec.delta,
        "parts": spec.parts(),
        "mechanism": "laplace",
        "noise": {node: str(rel.get("noise", "unknown"))[:80] for node, rel in releases.items()},
        "noise_placement": NOISE_PLACEMENT,
        "error_model": ERROR_MODEL,
        "max_rows_per_customer": spec.unit.max_rows_per_customer,
        "nodes": list(releases),
        "queries": {},
    }
    for q in spec.queries:
        out["queries"][q.name] = {
            **q.to_wire(),
            "federated": fed["queries"][q.name],
            "per_node": {n: per_node[n]["queries"][q.name] for n in releases},
        }
    for part in ("rfm", "quality"):
        if part in fed:
            out[part] = {
                "epsilon": getattr(spec, part).epsilon,
                "federated": fed[part],
                "per_node": {n: per_node[n][part] for n in releases},
            }
    return out
