"""A node's DP release: queries, RFM cells and the data-quality profile, noised on the node.

:func:`release_node` computes every statistic over the node's bounded rows
(:mod:`confide.analytics.prepare`) and adds Laplace noise before returning (OpenDP by default,
see :mod:`confide.analytics.mechanisms`). The release is a plain JSON dict of noisy vectors and
their noise scales; group keys, bins and cells are implied by the spec (declared categories),
never taken from the data; the id column and row values never appear in it.

Sensitivities (add/remove one customer, who contributes at most ``k`` rows):

* count: ``k`` for the whole vector of group counts (each row falls in one group);
* sum: ``k·max(|min|, |max|)`` (values clamped to the declared bounds);
* mean: a count (``k``) and a centred sum ``Σ(x - mid)`` (``k·(max - min)/2``), half the epsilon
  each; variance: count, centred sum and centred sum of squares, a third each;
* histogram and quantiles: bin counts, ``k``; RFM: cell counts (``k``) and cell monetary sums
  (``k·bound``), half each; quality: one status per row and column, ``k·columns``.

The k-means steps live in :mod:`confide.analytics.kmeans` and are re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .kmeans import assign_segments, kmeans_node_step
from .mechanisms import NoiseSampler, OpenDPLaplace, laplace_release
from .prepare import STATUS_NAMES, Prepared, prepare
from .spec import AnalysisSpec, Query, RFMSpec

__all__ = [
    "DEFAULT_QUANTILE_BINS",
    "RELEASE_FORMAT",
    "assign_segments",
    "bin_index",
    "group_cells",
    "kmeans_node_step",
    "quantile_edges",
    "release_node",
    "release_prepared",
]

RELEASE_FORMAT = "confide-analysis-release/1"
#: Equal-width bins over the declared range when a quantiles query declares none.
DEFAULT_QUANTILE_BINS = 100


def group_cells(spec: AnalysisSpec, prep: Prepared, query: Query) -> tuple[np.ndarray, int]:
    """Each row's group cell (row-major over the declared categories of ``group_by``; -1: the
    row is filtered out or has a missing or undeclared key) and the number of cells."""
    cell = np.zeros(prep.rows, dtype=np.int64)
    for col, allowed in query.where:
        cats = spec.columns[col].categories or ()
        wanted = np.array([c in allowed for c in cats] + [False])
        cell[~wanted[prep.codes[col]]] = -1  # code -1 indexes the trailing False
    n_cells = 1
    for col in query.group_by:
        size = len(spec.columns[col].categories or ())
        codes = prep.codes[col]
        cell = np.where((cell < 0) | (codes < 0), -1, cell * size + codes)
        n_cells *= size
    return cell, n_cells


def quantile_edges(spec: AnalysisSpec, query: Query) -> tuple[float, ...]:
    """The bin edges a quantiles query's histogram uses (declared, or equal-width default)."""
    if query.bins is not None:
        return query.bins
    decl = spec.columns[str(query.column)]
    return tuple(np.linspace(decl.min, decl.max, DEFAULT_QUANTILE_BINS + 1).tolist())


def bin_index(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Bin of each (finite) value; values beyond the outer edges go to the outer bins."""
    idx = np.searchsorted(np.asarray(edges), values, side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def _count(cells: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    ok = cells >= 0
    w = None if weights is None else weights[ok]
    return np.bincount(cells[ok], weights=w, minlength=n).astype(np.float64)


def _query(spec: AnalysisSpec, prep: Prepared, q: Query, sampler: NoiseSampler) -> dict[str, Any]:
    k = spec.unit.max_rows_per_customer
    cells, n = group_cells(spec, prep, q)
    out: dict[str, Any] = {"stat": q.stat, "epsilon": q.epsilon}
    if q.stat == "count":
        out["components"] = {"count": laplace_release(_count(cells, n), k, q.epsilon, sampler)}
        return out
    decl = spec.columns[str(q.column)]
    x = prep.numeric[str(q.column)]
    valid = np.isfinite(x)
    cells = np.where(valid, cells, -1)
    x0 = np.where(valid, x, 0.0)
    if q.stat == "sum":
        comp = {"sum": laplace_release(_count(cells, n, x0), k * decl.bound, q.epsilon, sampler)}
    elif q.stat in ("mean", "variance"):
        mid, half = (decl.min + decl.max) / 2, (decl.max - decl.min) / 2  # type: ignore[operator]
        centred = np.where(valid, x0 - mid, 0.0)
        parts = 2 if q.stat == "mean" else 3
        eps = q.epsilon / parts
        comp = {
            "count": laplace_release(_count(cells, n), k, eps, sampler),
            "centred_sum": laplace_release(_count(cells, n, centred), k * half, eps, sampler),
        }
        if q.stat == "variance":
            sq = _count(cells, n, centred**2)
            comp["centred_sum_sq"] = laplace_release(sq, k * half * half, eps, sampler)
        out["center"] = mid
    else:  # histogram, quantiles: group-major, bin-minor cells
        edges = q.bins if q.stat == "histogram" else quantile_edges(spec, q)
        nb = len(edges) - 1
        joint = np.where(cells >= 0, cells * nb + bin_index(x0, edges), -1)  # type: ignore[arg-type]
        comp = {"count": laplace_release(_count(joint, n * nb), k, q.epsilon, sampler)}
        out["edges"] = list(edges)  # type: ignore[arg-type]
    out["components"] = comp
    return out


def rfm_scores(rfm: RFMSpec, prep: Prepared) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Each row's RFM cell (row-major over R, F, M scores; -1 if a value is missing) and the
    number of scores per dimension. Scores run 1..n; recency is reversed (recent = high)."""
    dims = rfm.dimensions()
    sizes = tuple(len(d.bins) - 1 for d in dims.values())
    cell = np.zeros(prep.rows, dtype=np.int64)
    valid = np.ones(prep.rows, dtype=bool)
    for (key, dim), size in zip(dims.items(), sizes, strict=True):
        x = prep.numeric[dim.column]
        valid &= np.isfinite(x)
        idx = bin_index(np.nan_to_num(x), dim.bins)
        score0 = size - 1 - idx if key == "recency" else idx  # 0-based score
        cell = cell * size + score0
    return np.where(valid, cell, -1), sizes  # type: ignore[return-value]


def _rfm(spec: AnalysisSpec, prep: Prepared, sampler: NoiseSampler) -> dict[str, Any]:
    rfm = spec.rfm
    assert rfm is not None
    k = spec.unit.max_rows_per_customer
    cells, sizes = rfm_scores(rfm, prep)
    n = int(np.prod(sizes))
    money = np.nan_to_num(prep.numeric[rfm.monetary.column])
    bound = spec.columns[rfm.monetary.column].bound
    eps = rfm.epsilon / 2
    return {
        "epsilon": rfm.epsilon,
        "sizes": list(sizes),
        "components": {
            "count": laplace_release(_count(cells, n), k, eps, sampler),
            "monetary_sum": laplace_release(_count(cells, n, money), k * bound, eps, sampler),
        },
    }


def _quality(spec: AnalysisSpec, prep: Prepared, sampler: NoiseSampler) -> dict[str, Any]:
    qual = spec.quality
    assert qual is not None
    k = spec.unit.max_rows_per_customer
    counts = np.concatenate(
        [np.bincount(prep.status[c], minlength=len(STATUS_NAMES)) for c in qual.columns]
    ).astype(np.float64)
    sens = k * len(qual.columns)  # one status per row and column
    return {
        "epsilon": qual.epsilon,
        "statuses": list(STATUS_NAMES),
        "components": {"count": laplace_release(counts, sens, qual.epsilon, sampler)},
    }


def release_prepared(
    spec: AnalysisSpec, prep: Prepared, sampler: NoiseSampler | None = None
) -> dict[str, Any]:
    """The noisy release of already prepared rows (see :func:`release_node`); repeated calls
    draw fresh noise (the benchmarks use this to repeat a release without re-reading rows)."""
    sampler = sampler or OpenDPLaplace()
    out: dict[str, Any] = {
        "format": RELEASE_FORMAT,
        "analysis": spec.name,
        "mechanism": "laplace",
        "noise": sampler.name,
        "max_rows_per_customer": spec.unit.max_rows_per_customer,
        "epsilon": sum(eps for part, eps in spec.parts().items() if part != "segments"),
        "queries": {q.name: _query(spec, prep, q, sampler) for q in spec.queries},
    }
    if spec.rfm is not None:
        out["rfm"] = _rfm(spec, prep, sampler)
    if spec.quality is not None:
        out["quality"] = _quality(spec, prep, sampler)
    return out


def release_node(
    spec: AnalysisSpec,
    frame: pd.DataFrame,
    source: str,
    *,
    sampler: NoiseSampler | None = None,
) -> dict[str, Any]:
    """The node's noisy release for the queries, RFM and quality parts (k-means is separate).

    ``frame``: the node's validated rows (text or numbers) with the id column and every used
    column; ``source`` names the node's data in errors. Noise: OpenDP unless ``sampler`` is
    given (a seeded sampler is for simulation only, and the release says which was used)."""
    return release_prepared(spec, prepare(spec, frame, source), sampler)
