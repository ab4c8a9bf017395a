import numpy as np
from sklearn.metrics import roc_auc_score

from confide.modeling.metrics import binary_metrics, metrics_from_histograms, score_histograms


def test_pooled_histograms_match_exact_metrics_closely():
    rng = np.random.default_rng(0)
    parts = []
    for shift in (0.0, 0.5):
        y = rng.random(4000) < 0.3
        prob = 1 / (1 + np.exp(-(rng.normal(size=4000) + 1.5 * y - 1 + shift)))
        parts.append((y.astype(float), prob))
    hists = [score_histograms(y, p) for y, p in parts]
    pos = np.sum([h[0] for h in hists], axis=0)
    neg = np.sum([h[1] for h in hists], axis=0)
    y_all = np.concatenate([p[0] for p in parts])
    p_all = np.concatenate([p[1] for p in parts])
    exact = binary_metrics(y_all, p_all)
    loss_sum = float(exact["log_loss"] * len(y_all))
    brier_sum = float(exact["brier"] * len(y_all))
    pooled = metrics_from_histograms(pos, neg, loss_sum, brier_sum)
    assert abs(pooled["roc_auc"] - roc_auc_score(y_all, p_all)) < 0.002
    assert abs(pooled["ks"] - exact["ks"]) < 0.01
    assert pooled["n"] == len(y_all)
    assert abs(pooled["log_loss"] - exact["log_loss"]) < 1e-9


def test_single_class_gives_nan_ranking_metrics_not_an_error():
    m = binary_metrics(np.zeros(10), np.full(10, 0.2))
    assert np.isnan(m["roc_auc"]) and m["brier"] > 0
