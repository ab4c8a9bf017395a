"""Survival metrics, exact on rows or federated from per-node aggregates (no row leaves a node).

Each node bins its held-out customers by time (:func:`time_bins`: unit-width bins over the
declared duration range, at most :data:`MAX_TIME_BINS`, so whole-month durations are exact) and
by predicted risk at each horizon (``logit P(churn by h)`` in :data:`RISK_BINS` bins of width
0.05 on [-8, 8]); it sends the counts per (horizon, risk bin, time bin, event), plus the sums
of ``S(g)^2`` and ``(1 - S(g))^2`` per (grid time, time bin, event) for the Brier score and the
sum of predicted churn probabilities per (horizon, risk bin) for calibration. Summing these over
nodes gives the federation's:

- Harrell's C (pairs ``T_i < T_j`` with an event at ``T_i``, or ``T_i = T_j`` with an event at
  ``T_i`` and a censoring at ``T_j``, lifelines' convention; pairs in one risk bin count 1/2, so
  the binning error is at most half the share of comparable pairs inside one risk bin, reported
  as ``c_index_tie_share``; a test bounds it against :func:`harrell_c_exact` on pooled rows);
- the cumulative/dynamic AUC at each horizon with IPCW weights ``1 / G(T_i-)`` for cases
  (Uno et al.), ``G`` the Kaplan-Meier estimate of the censoring distribution from the pooled
  time-bin counts;
- the IPCW Brier score (Graf et al.) on the interval grid up to the last horizon and its
  integral (trapezoid rule, divided by the grid's span);
- calibration at each horizon: predicted against Kaplan-Meier observed churn in risk groups of
  at least :data:`MIN_CELL` customers (groups are merged until each holds that many).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from confide.modeling.survival_spec import SurvivalTaskSpec

_GridLike = Any  # a SurvivalTaskSpec or a MetricGrid: .duration.min/.max, .horizons, .grid

__all__ = [
    "MAX_TIME_BINS",
    "MIN_CELL",
    "RISK_BINS",
    "MetricGrid",
    "censoring_km",
    "harrell_c_exact",
    "km_binned",
    "metrics_from_aggregates",
    "survival_aggregates",
    "time_bins",
]

RISK_BINS = 320
_RISK_LO, _RISK_HI = -8.0, 8.0
MAX_TIME_BINS = 200
#: Smallest number of customers behind any released Kaplan-Meier or calibration cell.
MIN_CELL = 10


@dataclass(frozen=True)
class _Bounds:
    min: float
    max: float


@dataclass(frozen=True)
class MetricGrid:
    """What the pooled metrics need of a task (sent beside a node's aggregates): the declared
    duration bounds, the horizons and the Brier grid (interval edges up to the last horizon)."""

    duration: _Bounds
    horizons: tuple[float, ...]
    grid: tuple[float, ...]

    @classmethod
    def from_spec(cls, spec: SurvivalTaskSpec) -> MetricGrid:
        grid = tuple(t for t in spec.intervals if t <= spec.horizons[-1])
        return cls(_Bounds(spec.duration.min, spec.duration.max), spec.horizons, grid)

    def to_list(self) -> list[float]:
        """Flat numbers for a metric record: min, max, #horizons, horizons, grid."""
        h = list(self.horizons)
        return [self.duration.min, self.duration.max, float(len(h)), *h, *self.grid]

    @classmethod
    def from_list(cls, values: Any) -> MetricGrid:
        v = [float(x) for x in values]
        nh = int(v[2])
        return cls(_Bounds(v[0], v[1]), tuple(v[3 : 3 + nh]), tuple(v[3 + nh :]))


def _time_grid(spec: _GridLike) -> tuple[float, int]:
    span = spec.duration.max - spec.duration.min
    n = min(MAX_TIME_BINS, max(1, math.ceil(span)))
    return span / n, n + 1  # width, bins (the last holds duration == max)


def time_bins(duration: np.ndarray, spec: _GridLike) -> np.ndarray:
    """The time bin of each duration: ``floor((d - min) / width)``."""
    width, n = _time_grid(spec)
    raw = np.floor((np.asarray(duration, dtype=float) - spec.duration.min) / width + 1e-9)
    return np.clip(raw, 0, n - 1).astype(np.int64)


def _risk_bins(prob: np.ndarray) -> np.ndarray:
    p = np.clip(prob, 1e-12, 1 - 1e-12)
    logit = np.log(p) - np.log1p(-p)
    width = (_RISK_HI - _RISK_LO) / RISK_BINS
    return np.clip(np.floor((logit - _RISK_LO) / width), 0, RISK_BINS - 1).astype(np.int64)


def survival_aggregates(
    curves: np.ndarray, duration: np.ndarray, event: np.ndarray, spec: SurvivalTaskSpec
) -> dict[str, Any]:
    """A node's aggregates of its held-out rows (see the module docstring); ``curves`` is
    ``S(t_k | x)`` at every interval edge, ``(rows, K)``."""
    tb = time_bins(duration, spec)
    ev = (np.asarray(event) > 0.5).astype(np.int64)
    _, n_t = _time_grid(spec)
    hz = [spec.horizon_index(h) for h in spec.horizons]
    counts = np.zeros((len(hz), RISK_BINS, n_t, 2), dtype=np.int64)
    pred = np.zeros((len(hz), RISK_BINS))
    for i, k in enumerate(hz):
        churn = 1.0 - curves[:, k]
        rb = _risk_bins(churn)
        np.add.at(counts[i], (rb, tb, ev), 1)
        np.add.at(pred[i], rb, churn)
    grid = [spec.intervals.index(g) for g in MetricGrid.from_spec(spec).grid]
    sq_s = np.zeros((len(grid), n_t, 2))
    sq_f = np.zeros((len(grid), n_t, 2))
    for i, k in enumerate(grid):
        s = curves[:, k]
        np.add.at(sq_s[i], (tb, ev), s**2)
        np.add.at(sq_f[i], (tb, ev), (1.0 - s) ** 2)
    return {"counts": counts, "pred_sum": pred, "brier_s2": sq_s, "brier_f2": sq_f}


def censoring_km(per_time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(G(t), G(t-))`` per time bin from pooled ``(time bin, event)`` counts: the
    Kaplan-Meier estimate of the censoring distribution (events precede censoring at a tie)."""
    at_risk = per_time.sum(axis=1)[::-1].cumsum()[::-1].astype(float)
    censored = per_time[:, 0].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - censored / np.maximum(at_risk, 1), 1.0)
    g = np.cumprod(factor)
    g_before = np.concatenate([[1.0], g[:-1]])
    return g, g_before


def _km(per_time: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival of the event per time bin from ``(time bin, event)`` counts."""
    at_risk = per_time.sum(axis=1)[::-1].cumsum()[::-1].astype(float)
    events = per_time[:, 1].astype(float)
    factor = np.where(at_risk > 0, 1.0 - events / np.maximum(at_risk, 1), 1.0)
    return np.cumprod(factor)


def km_binned(
    per_time: np.ndarray, spec: _GridLike, min_cell: int = MIN_CELL
) -> list[dict[str, float]]:
    """Kaplan-Meier as binned counts: consecutive time bins are merged until each released cell
    holds at least ``min_cell`` customers leaving the risk set (events + censored); a last
    cell below that is merged into the one before. Each cell: its end time, at risk, events,
    censored and the KM survival at its end (events in a merged cell share one step)."""
    width, _ = _time_grid(spec)
    cells, start = [], 0
    leaving = per_time.sum(axis=1)
    for b in range(len(per_time)):
        if leaving[start : b + 1].sum() >= min_cell:
            cells.append((start, b))
            start = b + 1
    if start < len(per_time) and leaving[start:].sum() > 0:
        if cells:
            cells[-1] = (cells[-1][0], len(per_time) - 1)
        else:
            return []  # fewer than min_cell customers in all: nothing is released
    out, surv = [], 1.0
    for lo, hi in cells:
        at_risk = float(per_time[lo:].sum())
        events = float(per_time[lo : hi + 1, 1].sum())
        censored = float(per_time[lo : hi + 1, 0].sum())
        surv *= 1.0 - events / at_risk if at_risk else 1.0
        end = spec.duration.min + (hi + 1) * width
        out.append(
            {
                "end": min(end, spec.duration.max),
                "at_risk": at_risk,
                "events": events,
                "censored": censored,
                "survival": surv,
            }
        )
    return out


def _harrell_binned(counts: np.ndarray) -> tuple[float, float]:
    """Harrell's C and the share of comparable pairs inside one risk bin, from ``(r, t, e)``."""
    every = counts.sum(axis=2).astype(float)  # (r, t)
    later = every[:, ::-1].cumsum(axis=1)[:, ::-1]
    later = np.concatenate([later[:, 1:], np.zeros((len(every), 1))], axis=1)  # bins > t
    later = later + counts[:, :, 0]  # censored at the same time outlive the event (lifelines)
    below = np.cumsum(later, axis=0) - later  # risk bins < r
    cases = counts[:, :, 1].astype(float)
    concordant = float((cases * below).sum())
    tied = float((cases * later).sum())
    comparable = float((cases * later.sum(axis=0, keepdims=True)).sum())
    if comparable == 0:
        return float("nan"), float("nan")
    return (concordant + 0.5 * tied) / comparable, tied / comparable


def _auc_binned(counts: np.ndarray, h_bin: int, g_before: np.ndarray) -> float:
    cases = counts[:, : h_bin + 1, 1] / np.maximum(g_before[: h_bin + 1], 1e-12)
    case_w = cases.sum(axis=1)  # per risk bin, IPCW-weighted
    controls = counts[:, h_bin + 1 :, :].sum(axis=(1, 2)).astype(float)
    below = np.cumsum(controls) - controls
    denom = case_w.sum() * controls.sum()
    if denom == 0:
        return float("nan")
    return float((case_w * (below + 0.5 * controls)).sum() / denom)


def _calibration(counts: np.ndarray, pred: np.ndarray, h_bin: int) -> list[dict[str, float]]:
    """Risk groups (about deciles, each >= MIN_CELL customers): mean predicted vs observed."""
    per_bin = counts.sum(axis=(1, 2))
    total = per_bin.sum()
    groups, current, size = [], [], 0
    target = max(MIN_CELL, total / 10)
    for r in np.flatnonzero(per_bin):
        current.append(r)
        size += per_bin[r]
        if size >= target:
            groups.append(current)
            current, size = [], 0
    if current:
        if groups and size < MIN_CELL:
            groups[-1] += current
        else:
            groups.append(current)
    out = []
    for members in groups:
        n = int(per_bin[members].sum())
        if n < MIN_CELL:
            continue
        observed = float(1.0 - _km(counts[members].sum(axis=0))[h_bin])
        out.append(
            {"n": float(n), "predicted": float(pred[members].sum() / n), "observed": observed}
        )
    return out


def metrics_from_aggregates(agg: dict[str, Any], spec: _GridLike) -> dict[str, Any]:
    """Federated survival metrics from summed node aggregates (see the module docstring);
    ``spec`` is the task's :class:`SurvivalTaskSpec` or its :class:`MetricGrid`."""
    if isinstance(spec, SurvivalTaskSpec):
        spec = MetricGrid.from_spec(spec)
    counts = np.asarray(agg["counts"], dtype=np.int64)
    pred = np.asarray(agg["pred_sum"], dtype=float)
    per_time = counts[0].sum(axis=0)  # (t, e): every row once
    n = float(per_time.sum())
    _, g_before = censoring_km(per_time)
    g_at = censoring_km(per_time)[0]
    c_index, tie_share = _harrell_binned(counts[-1])
    out: dict[str, Any] = {
        "n": n,
        "events": float(per_time[:, 1].sum()),
        "c_index": c_index,
        "c_index_tie_share": tie_share,
    }
    h_bins = time_bins(np.asarray(spec.horizons), spec)
    calibration = {}
    for i, (h, hb) in enumerate(zip(spec.horizons, h_bins, strict=True)):
        out[f"auc@{h:g}"] = _auc_binned(counts[i], int(hb), g_before)
        calibration[f"{h:g}"] = _calibration(counts[i], pred[i], int(hb))
    grid = list(spec.grid)
    s2 = np.asarray(agg["brier_s2"], dtype=float)
    f2 = np.asarray(agg["brier_f2"], dtype=float)
    scores = []
    for i, (_g, gb) in enumerate(zip(grid, time_bins(np.asarray(grid), spec), strict=True)):
        gb = int(gb)
        died = (s2[i, : gb + 1, 1] / np.maximum(g_before[: gb + 1], 1e-12)).sum()
        alive = f2[i, gb + 1 :, :].sum() / max(g_at[gb], 1e-12)
        scores.append(float((died + alive) / n) if n else float("nan"))
    for h in spec.horizons:
        out[f"brier@{h:g}"] = scores[grid.index(h)]
    ibs = np.trapezoid(scores, grid) / (grid[-1] - grid[0]) if len(grid) > 1 else scores[0]
    out["ibs"] = float(ibs)
    out["calibration"] = calibration
    return out


def harrell_c_exact(risk: np.ndarray, duration: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C on rows (O(n^2) in chunks): over pairs with an event at ``T_i`` and either
    ``T_i < T_j`` or a censoring at ``T_j = T_i`` (lifelines' convention), the share with
    ``risk_i > risk_j`` (ties in risk count 1/2)."""
    risk = np.asarray(risk, dtype=float)
    t = np.asarray(duration, dtype=float)
    ev = np.asarray(event) > 0.5
    num, den = 0.0, 0.0
    cases = np.flatnonzero(ev)
    for start in range(0, len(cases), 512):
        idx = cases[start : start + 512]
        later = (t[None, :] > t[idx, None]) | ((t[None, :] == t[idx, None]) & ~ev[None, :])
        higher = risk[idx, None] > risk[None, :]
        same = risk[idx, None] == risk[None, :]
        num += float((later & higher).sum() + 0.5 * (later & same).sum())
        den += float(later.sum())
    return num / den if den else float("nan")
