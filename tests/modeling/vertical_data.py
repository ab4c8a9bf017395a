"""A small synthetic vertical data set for the vertical tests (until the shipped generator is
used): aligned rows, label-node features and feature-node features that both carry signal."""

from __future__ import annotations

import numpy as np

__all__ = ["vertical_arrays"]


def vertical_arrays(
    n: int = 28_000,
    d_label: int = 6,
    d_feature: int = 6,
    seed: int = 0,
    intercept: float = -2.6,
    label_scale: float = 0.45,
    feature_scale: float = 0.45,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_label, x_feature, y, train_idx, test_idx)``: standardised features, a logistic
    ground truth with about 10% positives, an 80/20 split."""
    rng = np.random.default_rng(seed)
    x_label = rng.normal(size=(n, d_label)).astype(np.float32)
    x_feature = rng.normal(size=(n, d_feature)).astype(np.float32)
    w_label = label_scale * np.linspace(1.0, 0.4, d_label)
    w_feature = feature_scale * np.linspace(1.0, 0.4, d_feature)
    logit = intercept + x_label @ w_label + x_feature @ w_feature
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    order = rng.permutation(n)
    cut = int(0.8 * n)
    return x_label, x_feature, y, np.sort(order[:cut]), np.sort(order[cut:])
