"""Curves from score histograms agree with row-level scikit-learn and with the run's metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from confide.modeling.metrics import HISTOGRAM_BINS, metrics_from_histograms, score_histograms
from confide.reports.curves import (
    calibration_curve,
    decile_table,
    gains_curve,
    ks_curve,
    pr_curve,
    roc_curve_from_histogram,
)
from tests.reports.fake_run import scores_for


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(7)
    y, p = scores_for(rng, 5000, 2.0)
    pos, neg = score_histograms(y, p)
    return y, p, np.array(pos), np.array(neg)


def test_roc_auc_matches_binned_row_level_auc_and_the_run_metric(sample):
    y, p, pos, neg = sample
    curve = roc_curve_from_histogram(pos, neg)
    binned = (np.minimum(np.floor(p * HISTOGRAM_BINS), HISTOGRAM_BINS - 1) + 0.5) / HISTOGRAM_BINS
    assert curve.auc == pytest.approx(roc_auc_score(y, binned), abs=1e-9)
    assert curve.auc == pytest.approx(roc_auc_score(y, p), abs=0.005)
    assert curve.auc == pytest.approx(metrics_from_histograms(pos, neg, 0, 0)["roc_auc"], abs=1e-9)
    assert curve.fpr[0] == 0 and curve.tpr[-1] == 1 and np.all(np.diff(curve.fpr) >= 0)


def test_pr_and_ks_match_the_pooled_metrics(sample):
    _, _, pos, neg = sample
    ref = metrics_from_histograms(pos, neg, 0.0, 0.0)
    pr = pr_curve(pos, neg)
    assert pr.average_precision == pytest.approx(ref["pr_auc"], abs=1e-9)
    assert pr.prevalence == pytest.approx(pos.sum() / (pos.sum() + neg.sum()))
    ks = ks_curve(pos, neg)
    assert ks.ks == pytest.approx(ref["ks"], abs=1e-9)
    assert ks.cdf_pos[-1] == pytest.approx(1) and ks.cdf_neg[-1] == pytest.approx(1)
    assert 0 < ks.ks_threshold < 1


def test_decile_table_conserves_rows_and_positives_and_ranks_by_score(sample):
    y, p, pos, neg = sample
    table = decile_table(pos, neg)
    assert [r.decile for r in table] == list(range(1, 11))
    assert sum(r.rows for r in table) == pytest.approx(len(y))
    assert sum(r.positives for r in table) == pytest.approx(y.sum())
    assert all(r.rows == pytest.approx(len(y) / 10) for r in table)
    assert table[-1].cumulative_captured == pytest.approx(1.0)
    assert table[-1].cumulative_lift == pytest.approx(1.0)
    rates = [r.response_rate for r in table]
    assert rates[0] > 2 * y.mean() and rates[0] > rates[4] > rates[9]
    # the top decile agrees with ranking the rows themselves (up to bin ties)
    top = np.argsort(-p)[: len(y) // 10]
    assert table[0].response_rate == pytest.approx(y[top].mean(), abs=0.03)
    assert table[0].score_min <= table[0].score_max and table[0].score_max <= 1.0


def test_gains_curve_is_monotone_and_beats_random(sample):
    _, _, pos, neg = sample
    g = gains_curve(pos, neg)
    assert g.population[0] == 0 and g.population[-1] == pytest.approx(1)
    assert np.all(np.diff(g.captured) >= 0) and g.captured[-1] == pytest.approx(1)
    at_20 = np.interp(0.2, g.population, g.captured)
    assert at_20 > 0.35


def test_calibration_of_true_probabilities_is_close_to_the_diagonal():
    rng = np.random.default_rng(3)
    p = rng.beta(1.5, 4, size=20000)
    y = (rng.random(20000) < p).astype(float)
    cal = calibration_curve(*score_histograms(y, p))
    assert cal.counts.sum() == 20000 and len(cal.counts) == 10
    assert cal.counts.min() > 1400  # groups of about equal size
    assert cal.ece < 0.02
    assert np.all(np.diff(cal.mean_predicted) > 0)
    skewed = calibration_curve(*score_histograms(y, np.clip(p * 1.8, 0, 1)))
    assert skewed.ece > 0.08


@pytest.mark.parametrize(
    "pos,neg",
    [([0, 0, 0], [1, 2, 3]), ([1, 2], [0, 0]), ([1, 2], [1, 2, 3]), ([-1, 2], [1, 1])],
)
def test_degenerate_histograms_are_refused(pos, neg):
    with pytest.raises(ValueError):
        roc_curve_from_histogram(pos, neg)
