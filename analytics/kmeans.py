"""DP k-means (DP-Lloyd) across nodes: node steps, coordinator updates, segment summary.

Features are the declared-bounded columns of ``segments.features``, clamped and scaled to
[0, 1] by their bounds (the clustering space). The plan has ``iterations + 2`` steps, and the
segments epsilon is split across them (basic composition):

* step 0, ``init`` (20%): each node releases a noisy grid histogram of its features
  (``g`` cells per feature, ``g^d <= 256``; sensitivity ``k``); the coordinator runs a
  deterministic weighted k-means on the cell centres, post-processing only, for the start;
* steps 1..T, ``lloyd`` (40% in total, equal per step): each node assigns its rows to the
  nearest centroid and releases per-cluster counts and centred feature sums ``Σ(z - 0.5)``
  as one vector (L1 sensitivity ``k·(1 + d/2)``); the coordinator's new centroid is
  ``0.5 + ΣS / ΣN`` (the previous one where the noisy count is not positive);
* step T+1, ``final`` (40%): with the final centroids each node releases per-segment counts
  split by the binary outcome (0, 1, missing: sensitivity ``k``) and per-segment value sums
  (``k·bound``), two thirds and one third of the step's epsilon; the coordinator reports
  segment sizes, outcome rates (e.g. churn) and average values with their expected 95% errors.

Assignments (:func:`assign_segments`) never leave the node; they can feed its later training.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pandas as pd

from .estimates import linear_error, rate, ratio
from .mechanisms import NoiseSampler, OpenDPLaplace, laplace_release
from .prepare import AnalysisDataError, Prepared, numeric_column, prepare
from .received import component
from .spec import AnalysisSpec, SegmentsSpec

__all__ = [
    "SHARES",
    "assign_segments",
    "kmeans_node_step",
    "kmeans_update",
    "segments_summary",
    "step_epsilon",
    "step_kind",
]

#: Shares of the segments epsilon: the init histogram, all Lloyd steps together, the summary.
SHARES = {"init": 0.2, "lloyd": 0.4, "final": 0.4}
_MAX_GRID_CELLS = 256
_OUTCOME_CELLS = 3  # outcome 0, outcome 1, outcome missing
_RESTARTS = 10
#: Share of the final step's epsilon spent on the per-segment counts when a value is summed too.
_FINAL_COUNT_SHARE = 2 / 3


def _segments(spec: AnalysisSpec) -> SegmentsSpec:
    if spec.segments is None:
        raise AnalysisDataError(f"analysis '{spec.name}' has no segments part (rule ANALYSIS-SPEC)")
    return spec.segments


def step_kind(spec: AnalysisSpec, iteration: int) -> str:
    """``init`` (0), ``lloyd`` (1..iterations) or ``final`` (iterations + 1)."""
    seg = _segments(spec)
    if iteration == 0:
        return "init"
    if 1 <= iteration <= seg.iterations:
        return "lloyd"
    if iteration == seg.iterations + 1:
        return "final"
    raise AnalysisDataError(
        f"analysis '{spec.name}': k-means step {iteration} is outside the plan "
        f"0..{seg.iterations + 1} (rule ANALYSIS-SPEC)"
    )


def step_epsilon(spec: AnalysisSpec, iteration: int) -> float:
    """The epsilon one node spends on k-means step ``iteration``."""
    seg = _segments(spec)
    kind = step_kind(spec, iteration)
    share = SHARES[kind] / (seg.iterations if kind == "lloyd" else 1)
    return seg.epsilon * share


def _grid_size(d: int) -> int:
    return max(2, math.floor(_MAX_GRID_CELLS ** (1.0 / d) + 1e-9))


def _scaled(spec: AnalysisSpec, values: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    seg = _segments(spec)
    cols = []
    for f in seg.features:
        decl = spec.columns[f]
        cols.append((values[f] - decl.min) / (decl.max - decl.min))  # type: ignore[operator]
    z = np.column_stack(cols)
    valid = np.isfinite(z).all(axis=1)
    return np.where(valid[:, None], z, 0.5), valid


def _to_unit(spec: AnalysisSpec, centroids: list[list[float]]) -> np.ndarray:
    seg = _segments(spec)
    c = np.asarray(centroids, dtype=np.float64)
    if c.shape != (seg.k, len(seg.features)) or not np.isfinite(c).all():
        raise AnalysisDataError(
            f"analysis '{spec.name}': centroids must be {seg.k} finite points of "
            f"{len(seg.features)} features (rule ANALYSIS-SPEC)"
        )
    lo = np.array([spec.columns[f].min for f in seg.features])
    hi = np.array([spec.columns[f].max for f in seg.features])
    return np.clip((c - lo) / (hi - lo), 0.0, 1.0)


def _from_unit(spec: AnalysisSpec, z: np.ndarray) -> list[list[float]]:
    seg = _segments(spec)
    lo = np.array([spec.columns[f].min for f in seg.features])
    hi = np.array([spec.columns[f].max for f in seg.features])
    return (lo + np.clip(z, 0.0, 1.0) * (hi - lo)).tolist()


def _nearest(z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre per row (one n-by-k distance matrix, no n-by-k-by-d one)."""
    d2 = np.stack([((z - c) ** 2).sum(axis=1) for c in centres], axis=1)
    return np.argmin(d2, axis=1)


def _bincount(idx: np.ndarray, n: int, w: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(idx, weights=w, minlength=n).astype(np.float64)


def kmeans_node_step(
    spec: AnalysisSpec,
    frame: pd.DataFrame,
    centroids: list[list[float]] | None,
    iteration: int,
    *,
    sampler: NoiseSampler | None = None,
    source: str = "node data",
) -> dict[str, Any]:
    """One node's noisy k-means release for step ``iteration`` (see the module docstring).

    ``centroids`` (original units) are None for the init step and required afterwards."""
    sampler = sampler or OpenDPLaplace()
    seg = _segments(spec)
    kind = step_kind(spec, iteration)
    eps = step_epsilon(spec, iteration)
    k_rows = spec.unit.max_rows_per_customer
    used = [*seg.features, *(c for c in (seg.outcome, seg.value) if c is not None)]
    prep: Prepared = prepare(spec, frame, source, list(dict.fromkeys(used)))
    z, valid = _scaled(spec, prep.numeric)
    out: dict[str, Any] = {
        "iteration": iteration,
        "kind": kind,
        "epsilon": eps,
        "noise": sampler.name,
    }
    d = len(seg.features)
    if kind == "init":
        g = _grid_size(d)
        cell = np.zeros(len(z), dtype=np.int64)
        for j in range(d):
            cell = cell * g + np.clip((z[:, j] * g).astype(np.int64), 0, g - 1)
        counts = _bincount(cell[valid], g**d)
        out["grid"] = g
        out["components"] = {"count": laplace_release(counts, k_rows, eps, sampler)}
        return out
    if centroids is None:
        raise AnalysisDataError(
            f"analysis '{spec.name}': k-means step {iteration} needs centroids (rule ANALYSIS-SPEC)"
        )
    label = _nearest(z[valid], _to_unit(spec, centroids))
    if kind == "lloyd":
        counts = _bincount(label, seg.k)
        sums = [_bincount(label, seg.k, z[valid][:, j] - 0.5) for j in range(d)]
        vector = np.concatenate([counts, *sums])
        sens = k_rows * (1.0 + d / 2.0)
        out["components"] = {"count_and_sums": laplace_release(vector, sens, eps, sampler)}
        return out
    # final: per segment counts by outcome, and value sums
    idx = np.flatnonzero(valid)
    comps: dict[str, Any] = {}
    eps_counts = eps * _FINAL_COUNT_SHARE if seg.value is not None else eps
    if seg.outcome is not None:
        y = prep.numeric[seg.outcome][idx]
        ycell = np.where(np.isfinite(y), (np.nan_to_num(y) >= 0.5).astype(np.int64), 2)
        counts = _bincount(label * _OUTCOME_CELLS + ycell, seg.k * _OUTCOME_CELLS)
    else:
        counts = _bincount(label, seg.k)
    comps["count"] = laplace_release(counts, k_rows, eps_counts, sampler)
    if seg.value is not None:
        v = np.nan_to_num(prep.numeric[seg.value][idx])
        bound = spec.columns[seg.value].bound
        comps["value_sum"] = laplace_release(
            _bincount(label, seg.k, v), k_rows * bound, eps - eps_counts, sampler
        )
    out["components"] = comps
    return out


def assign_segments(
    spec: AnalysisSpec, frame: pd.DataFrame, centroids: list[list[float]]
) -> pd.Series:
    """Each row's segment (0..k-1; <NA> where a feature is missing or invalid), indexed like
    ``frame``. Node-local only: never part of any release."""
    seg = _segments(spec)
    values = {f: numeric_column(frame[f], spec.columns[f])[0] for f in seg.features}
    z, valid = _scaled(spec, values)
    label = _nearest(z, _to_unit(spec, centroids))
    out = pd.Series(pd.array(label, dtype="Int64"), index=frame.index, name="segment")
    out[~valid] = pd.NA
    return out


# --------------------------------------------------------------------------- coordinator


def _summed(
    steps: dict[str, dict[str, Any]], name: str, length: int
) -> tuple[np.ndarray, list[float]]:
    parts = [component(node, s, ("components", name), length) for node, s in steps.items()]
    return np.sum([v for v, _ in parts], axis=0), [b for _, b in parts]


def _kinds(steps: dict[str, dict[str, Any]]) -> set[Any]:
    return {s.get("kind") if isinstance(s, dict) else None for s in steps.values()}


def _weighted_lloyd(points: np.ndarray, w: np.ndarray, k: int, rng) -> tuple[np.ndarray, float]:
    centres = [points[rng.choice(len(points), p=w / w.sum())]]
    for _ in range(1, k):  # k-means++ seeding, weighted
        d2 = ((points[:, None, :] - np.asarray(centres)[None]) ** 2).sum(axis=2).min(axis=1)
        p = w * d2
        p = p / p.sum() if p.sum() > 0 else w / w.sum()
        centres.append(points[rng.choice(len(points), p=p)])
    c = np.asarray(centres)
    for _ in range(100):
        label = _nearest(points, c)
        mass = _bincount(label, k, w)
        sums = np.stack([_bincount(label, k, w * points[:, j]) for j in range(points.shape[1])], 1)
        new = np.where(mass[:, None] > 0, sums / np.maximum(mass, 1e-300)[:, None], c)
        if np.allclose(new, c):
            break
        c = new
    cost = float((w * ((points - c[_nearest(points, c)]) ** 2).sum(axis=1)).sum())
    return c, cost


def _weighted_kmeans(points: np.ndarray, weights: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Deterministic weighted k-means on the grid cells (post-processing of the noisy
    histogram): the best of ``_RESTARTS`` k-means++ starts by weighted cost."""
    rng = np.random.default_rng(seed)
    w = np.clip(weights, 0.0, None)
    if w.sum() <= 0:
        w = np.ones_like(w)
    runs = [_weighted_lloyd(points, w, k, rng) for _ in range(_RESTARTS)]
    return min(runs, key=lambda run: run[1])[0]


def kmeans_update(
    spec: AnalysisSpec,
    steps: dict[str, dict[str, Any]],
    previous: list[list[float]] | None = None,
) -> list[list[float]]:
    """New centroids (original units) from the nodes' noisy ``init`` or ``lloyd`` steps."""
    seg = _segments(spec)
    kinds = _kinds(steps)
    d = len(seg.features)
    if kinds == {"init"}:
        g = _grid_size(d)
        counts, _ = _summed(steps, "count", g**d)
        axes = [(np.arange(g) + 0.5) / g] * d
        points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, d)
        seed = zlib.crc32(spec.name.encode("utf-8"))
        return _from_unit(spec, _weighted_kmeans(points, counts, seg.k, seed))
    if kinds == {"lloyd"}:
        vector, _ = _summed(steps, "count_and_sums", seg.k * (1 + d))
        counts = vector[: seg.k]
        sums = vector[seg.k :].reshape(d, seg.k).T
        old = _to_unit(spec, previous) if previous is not None else np.full((seg.k, d), 0.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = 0.5 + sums / counts[:, None]
        new = np.where(counts[:, None] > 0, new, old)
        return _from_unit(spec, new)
    raise AnalysisDataError(
        f"analysis '{spec.name}': a centroid update needs init or lloyd steps of one kind "
        "from every node (rule ANALYSIS-SPEC)"
    )


def _segment_rows(spec: AnalysisSpec, steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    seg = _segments(spec)
    cells = seg.k * (_OUTCOME_CELLS if seg.outcome is not None else 1)
    counts, c_scales = _summed(steps, "count", cells)
    if seg.value is not None:
        vs, v_scales = _summed(steps, "value_sum", seg.k)
    rows = []
    for j in range(seg.k):
        row: dict[str, Any] = {"segment": j}
        if seg.outcome is not None:
            n0, n1, nm = counts[j * _OUTCOME_CELLS : (j + 1) * _OUTCOME_CELLS]
            size = n0 + n1 + nm
            size_scales = c_scales * _OUTCOME_CELLS
            # rate = n1 / (n0 + n1): d rate = ((1 - r) dn1 - r dn0) / (n0 + n1)
            r = rate(n1, n0 + n1)
            if r is None:
                row["outcome_rate"] = {"value": None, "error95": None}
            else:
                denom = n0 + n1
                scales = [abs(1 - r) / denom * b for b in c_scales]
                scales += [abs(r) / denom * b for b in c_scales]
                row["outcome_rate"] = {"value": r, "error95": linear_error(scales)}
        else:
            size, size_scales = counts[j], c_scales
        row["size"] = {"value": float(size), "error95": linear_error(size_scales)}
        if seg.value is not None:
            avg = ratio(vs[j], size)
            if avg is None:
                row["average_value"] = {"value": None, "error95": None}
            else:
                # avg = V / N: d avg = dV / N - avg dN / N
                scales = [b / size for b in v_scales] + [abs(avg) / size * b for b in size_scales]
                row["average_value"] = {"value": avg, "error95": linear_error(scales)}
        rows.append(row)
    return rows


def segments_summary(
    spec: AnalysisSpec, steps: dict[str, dict[str, Any]], centroids: list[list[float]]
) -> dict[str, Any]:
    """Centroids, per-segment sizes, outcome rates and average values with 95% errors,
    federated and per node, from the nodes' ``final`` steps."""
    seg = _segments(spec)
    if _kinds(steps) != {"final"}:
        raise AnalysisDataError(
            f"analysis '{spec.name}': the segment summary needs every node's final step "
            "(rule ANALYSIS-SPEC)"
        )
    return {
        "epsilon": seg.epsilon,
        "k": seg.k,
        "iterations": seg.iterations,
        "features": list(seg.features),
        "outcome": seg.outcome,
        "value": seg.value,
        "centroids": [dict(zip(seg.features, c, strict=True)) for c in centroids],
        "federated": _segment_rows(spec, steps),
        "per_node": {node: _segment_rows(spec, {node: s}) for node, s in steps.items()},
    }
