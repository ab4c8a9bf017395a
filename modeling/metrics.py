"""Binary-classification metrics (scikit-learn), exact or from pooled score histograms.

Nodes in a federation report per-class histograms of predicted probabilities on their held-out
split; pooling those counts gives federation-wide ROC-AUC, PR-AUC and KS without any row-level
prediction leaving a node (exact up to the histogram's bin width).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)

__all__ = [
    "HISTOGRAM_BINS",
    "binary_metrics",
    "histogram_points",
    "metrics_from_histograms",
    "score_histograms",
]

HISTOGRAM_BINS = 200
_EPS = 1e-7


def _ks(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    fpr, tpr, _ = roc_curve(y_true, scores, sample_weight=weights)
    return float(np.max(tpr - fpr))


def binary_metrics(y_true: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log-loss, Brier score, KS and label rate of probabilities ``prob``."""
    y_true = np.asarray(y_true, dtype=float)
    prob = np.clip(np.asarray(prob, dtype=float), _EPS, 1 - _EPS)
    out = {
        "n": float(len(y_true)),
        "positive_rate": float(y_true.mean()) if len(y_true) else float("nan"),
        "log_loss": float(log_loss(y_true, prob, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, prob)),
    }
    if 0 < y_true.sum() < len(y_true):
        out["roc_auc"] = float(roc_auc_score(y_true, prob))
        out["pr_auc"] = float(average_precision_score(y_true, prob))
        out["ks"] = _ks(y_true, prob)
    else:  # one class only: ranking metrics are undefined
        out.update(roc_auc=float("nan"), pr_auc=float("nan"), ks=float("nan"))
    return out


def score_histograms(
    y_true: np.ndarray, prob: np.ndarray, bins: int = HISTOGRAM_BINS
) -> tuple[list[int], list[int]]:
    """Counts of predicted probabilities per bin, for positives and for negatives."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    y = np.asarray(y_true) > 0.5
    pos, _ = np.histogram(prob[y], bins=edges)
    neg, _ = np.histogram(prob[~y], bins=edges)
    return pos.astype(int).tolist(), neg.astype(int).tolist()


def histogram_points(
    pos_counts: np.ndarray, neg_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histograms as weighted points ``(labels, scores, weights)`` at bin centres (empty bins
    dropped), ready for scikit-learn's ``sample_weight``."""
    pos = np.asarray(pos_counts, dtype=float)
    neg = np.asarray(neg_counts, dtype=float)
    bins = len(pos)
    centers = (np.arange(bins) + 0.5) / bins
    scores = np.concatenate([centers, centers])
    labels = np.concatenate([np.ones(bins), np.zeros(bins)])
    weights = np.concatenate([pos, neg])
    keep = weights > 0
    return labels[keep], scores[keep], weights[keep]


def metrics_from_histograms(
    pos_counts: np.ndarray, neg_counts: np.ndarray, loss_sum: float, brier_sum: float
) -> dict[str, float]:
    """Pooled metrics from summed histograms plus summed log-loss and Brier terms."""
    pos = np.asarray(pos_counts, dtype=float)
    neg = np.asarray(neg_counts, dtype=float)
    n = pos.sum() + neg.sum()
    out = {
        "n": float(n),
        "positive_rate": float(pos.sum() / n) if n else float("nan"),
        "log_loss": float(loss_sum / n) if n else float("nan"),
        "brier": float(brier_sum / n) if n else float("nan"),
    }
    if pos.sum() > 0 and neg.sum() > 0:
        y, s, w = histogram_points(pos, neg)
        out["roc_auc"] = float(roc_auc_score(y, s, sample_weight=w))
        out["pr_auc"] = float(average_precision_score(y, s, sample_weight=w))
        out["ks"] = _ks(y, s, w)
    else:
        out.update(roc_auc=float("nan"), pr_auc=float("nan"), ks=float("nan"))
    return out
