"""Label-leakage attacks on what a feature node receives (Li et al. 2022, "Label Leakage and
Protection in Two-party Split Learning"), adapted to the vertical protocol's release.

A feature node receives one value per position: the label node's clipped residual ``y - p``
plus Gaussian noise (:func:`confide.modeling.vertical_model.label_release`). It plays the role
of the gradient in split learning (the gradient of the logistic loss with respect to the logit
is ``p - y``). Each attack scores every position and is judged by the ROC-AUC of that score
against the true labels (0.5: no better than guessing):

- the norm attack (score ``|g|``): with an imbalanced label, positives have large residuals;
- the direction attack (score: the cosine, in one dimension the sign agreement, with a known
  positive example's value);
- the best attack on a one-dimensional release (score ``g`` itself).

A Gaussian release of a value that moves by 1 between the two labels bounds every attack on one
row: no test can beat the ROC curve of N(0, 1) against N(1/sigma, 1), whose AUC is
``Phi(1 / (sigma sqrt 2))`` (:func:`release_auc_bound`). An epsilon-DP release bounds, but does
not zero, what any attack can reach.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from confide.modeling.errors import ConfideError

__all__ = [
    "LabelLeakageError",
    "attack_aucs",
    "best_attack_auc",
    "direction_attack_auc",
    "norm_attack_auc",
    "release_auc_bound",
]


class LabelLeakageError(ConfideError):
    """An attack was asked for on inputs it cannot score (shapes, one class only)."""


def _check(g: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if len(g) != len(y) or not 0 < y.sum() < len(y):
        raise LabelLeakageError(
            "label leakage: one received value per label and both classes present "
            "(rule: attack inputs)"
        )
    return g, y


def norm_attack_auc(g: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC of the norm attack: score ``|g|`` (Li et al. 2022, section 4.1)."""
    g, y = _check(g, y)
    return float(roc_auc_score(y, np.abs(g)))


def direction_attack_auc(g: np.ndarray, y: np.ndarray, known_positive: int) -> float:
    """ROC-AUC of the direction attack: score = cosine similarity of each received value with
    that of one known positive example (``known_positive``: its index), which in one dimension
    is the sign agreement (Li et al. 2022, section 4.2). The known example is left out."""
    g, y = _check(g, y)
    if not 0 <= known_positive < len(g) or y[known_positive] != 1:
        raise LabelLeakageError(
            "label leakage: the direction attack needs the index of a positive example "
            "(rule: attack inputs)"
        )
    keep = np.ones(len(g), dtype=bool)
    keep[known_positive] = False
    score = np.sign(g[keep]) * np.sign(g[known_positive])
    return float(roc_auc_score(y[keep], score))


def best_attack_auc(g: np.ndarray, y: np.ndarray) -> float:
    """ROC-AUC of ranking by ``g`` itself: the likelihood-ratio order of a one-dimensional
    Gaussian release of the residual (higher residual, more likely positive)."""
    g, y = _check(g, y)
    return float(roc_auc_score(y, g))


def attack_aucs(g: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """All three attacks' AUCs; the direction attack's known positive is drawn from ``seed``."""
    g, y = _check(g, y)
    positives = np.flatnonzero(y == 1)
    known = int(np.random.default_rng(seed).choice(positives))
    return {
        "norm": norm_attack_auc(g, y),
        "direction": direction_attack_auc(g, y, known),
        "best": best_attack_auc(g, y),
    }


def release_auc_bound(sigma: float) -> float:
    """The highest ROC-AUC any attack can reach on one row from a Gaussian release of noise
    multiplier ``sigma`` whose value moves by at most 1 with the label: Phi(1/(sigma sqrt 2))."""
    if sigma <= 0:
        return 1.0
    return float(norm.cdf(1.0 / (sigma * math.sqrt(2.0))))
