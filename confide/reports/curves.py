"""Curve maths from pooled score histograms (what a real federation has), never from rows.

A histogram is two count vectors (positives, negatives) over equal-width score bins on [0, 1].
Rows inside one bin are treated as sharing the bin's centre score, so every curve is exact up to
the bin width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from confide.modeling.metrics import histogram_points

__all__ = [
    "CalibrationCurve",
    "DecileRow",
    "GainsCurve",
    "KSCurve",
    "PRCurve",
    "ROCCurve",
    "calibration_curve",
    "decile_table",
    "gains_curve",
    "ks_curve",
    "pr_curve",
    "roc_curve_from_histogram",
]


def _counts(pos, neg) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(pos, dtype=float)
    neg = np.asarray(neg, dtype=float)
    if pos.shape != neg.shape or pos.ndim != 1 or len(pos) == 0:
        raise ValueError("histograms must be two 1-D count vectors of the same length")
    if (pos < 0).any() or (neg < 0).any():
        raise ValueError("histogram counts must be non-negative")
    if pos.sum() == 0 or neg.sum() == 0:
        raise ValueError("curves need both positives and negatives in the histogram")
    return pos, neg


def _weighted(pos: np.ndarray, neg: np.ndarray):
    return histogram_points(pos, neg)


@dataclass(frozen=True)
class ROCCurve:
    """False and true positive rates over thresholds, and the area under them."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


@dataclass(frozen=True)
class PRCurve:
    """Precision over recall; ``average_precision`` as scikit-learn defines it."""

    recall: np.ndarray
    precision: np.ndarray
    average_precision: float
    prevalence: float


@dataclass(frozen=True)
class CalibrationCurve:
    """Mean predicted probability vs observed positive rate per group of score bins."""

    mean_predicted: np.ndarray
    observed_rate: np.ndarray
    counts: np.ndarray
    ece: float  # expected calibration error: count-weighted mean |observed - predicted|


@dataclass(frozen=True)
class KSCurve:
    """Cumulative score distributions of positives and negatives; KS is their largest gap."""

    thresholds: np.ndarray
    cdf_pos: np.ndarray
    cdf_neg: np.ndarray
    ks: float
    ks_threshold: float


@dataclass(frozen=True)
class GainsCurve:
    """Share of positives captured when targeting the top share of rows by score."""

    population: np.ndarray
    captured: np.ndarray
    prevalence: float


@dataclass(frozen=True)
class DecileRow:
    """One decile of rows ranked by score (decile 1 = highest scores)."""

    decile: int
    rows: float
    positives: float
    score_min: float
    score_max: float
    response_rate: float
    cumulative_captured: float
    lift: float
    cumulative_lift: float


def roc_curve_from_histogram(pos, neg) -> ROCCurve:
    """ROC curve of a score histogram (scikit-learn ``roc_curve`` with counts as weights)."""
    y, s, w = _weighted(*_counts(pos, neg))
    fpr, tpr, _ = roc_curve(y, s, sample_weight=w)
    return ROCCurve(fpr, tpr, float(auc(fpr, tpr)))


def pr_curve(pos, neg) -> PRCurve:
    """Precision-recall curve of a score histogram, with average precision and prevalence."""
    p, n = _counts(pos, neg)
    y, s, w = _weighted(p, n)
    precision, recall, _ = precision_recall_curve(y, s, sample_weight=w)
    ap = float(average_precision_score(y, s, sample_weight=w))
    return PRCurve(recall, precision, ap, float(p.sum() / (p.sum() + n.sum())))


def calibration_curve(pos, neg, groups: int = 10) -> CalibrationCurve:
    """Observed rate vs mean predicted score over ``groups`` groups of adjacent bins.

    Adjacent bins are merged until each group holds about ``1/groups`` of the rows (quantile
    groups), so sparse score ranges do not produce noisy points.
    """
    p, n = _counts(pos, neg)
    bins = len(p)
    centers = (np.arange(bins) + 0.5) / bins
    total = p + n
    cum = np.cumsum(total)
    target = cum[-1] / groups
    # a bin joins the group its middle row falls in
    group_of = np.clip(np.floor((cum - total / 2) / target).astype(int), 0, groups - 1)
    means, rates, counts = [], [], []
    for g in np.unique(group_of[total > 0]):
        sel = (group_of == g) & (total > 0)
        count = total[sel].sum()
        means.append(float((centers[sel] * total[sel]).sum() / count))
        rates.append(float(p[sel].sum() / count))
        counts.append(float(count))
    means_a, rates_a, counts_a = np.array(means), np.array(rates), np.array(counts)
    ece = float((np.abs(rates_a - means_a) * counts_a).sum() / counts_a.sum())
    return CalibrationCurve(means_a, rates_a, counts_a, ece)


def ks_curve(pos, neg) -> KSCurve:
    """Cumulative distributions of positives' and negatives' scores over the bin edges."""
    p, n = _counts(pos, neg)
    edges = np.linspace(0.0, 1.0, len(p) + 1)
    cdf_pos = np.concatenate([[0.0], np.cumsum(p) / p.sum()])
    cdf_neg = np.concatenate([[0.0], np.cumsum(n) / n.sum()])
    gap = cdf_neg - cdf_pos
    best = int(np.argmax(gap))
    return KSCurve(edges, cdf_pos, cdf_neg, float(gap[best]), float(edges[best]))


def _descending(pos, neg):
    p, n = _counts(pos, neg)
    order = np.arange(len(p))[::-1]  # highest scores first
    return p[order], n[order], order


def gains_curve(pos, neg) -> GainsCurve:
    """Cumulative gains: share of positives in the top x of rows ranked by score."""
    p, n, _ = _descending(pos, neg)
    total = p + n
    population = np.concatenate([[0.0], np.cumsum(total) / total.sum()])
    captured = np.concatenate([[0.0], np.cumsum(p) / p.sum()])
    return GainsCurve(population, captured, float(p.sum() / total.sum()))


def decile_table(pos, neg, parts: int = 10) -> list[DecileRow]:
    """The decile (or ``parts``-tile) table of rows ranked by score, highest first.

    A bin that straddles a decile boundary is split in proportion to its count, assuming its
    positives and negatives are evenly mixed (all its rows share one score).
    """
    p, n, order = _descending(pos, neg)
    bins = len(p)
    total = p + n
    grand, grand_pos = total.sum(), p.sum()
    prevalence = grand_pos / grand
    cum_rows = np.concatenate([[0.0], np.cumsum(total)])
    rows_out: list[DecileRow] = []
    captured_so_far = 0.0
    for k in range(parts):
        lo, hi = grand * k / parts, grand * (k + 1) / parts
        # overlap of each bin [cum_rows[i], cum_rows[i+1]) with [lo, hi)
        overlap = np.clip(np.minimum(cum_rows[1:], hi) - np.maximum(cum_rows[:-1], lo), 0, None)
        share = np.divide(overlap, total, out=np.zeros(bins), where=total > 0)
        rows = float(overlap.sum())
        positives = float((share * p).sum())
        used = np.nonzero(overlap > 0)[0]
        score_max = float((order[used].max() + 1) / bins) if len(used) else float("nan")
        score_min = float(order[used].min() / bins) if len(used) else float("nan")
        captured_so_far += positives
        rate = positives / rows if rows else float("nan")
        cum_rate = captured_so_far / hi if hi else float("nan")
        rows_out.append(
            DecileRow(
                decile=k + 1,
                rows=rows,
                positives=positives,
                score_min=score_min,
                score_max=score_max,
                response_rate=rate,
                cumulative_captured=captured_so_far / grand_pos,
                lift=rate / prevalence,
                cumulative_lift=cum_rate / prevalence,
            )
        )
    return rows_out
