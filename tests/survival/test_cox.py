"""The numpy Cox fit against lifelines 0.30.3 and hand-computed partial likelihoods.

lifelines requires pandas < 3 and is not a dependency; its numbers below were computed once in
a separate environment (lifelines 0.30.3, pandas 2.3.3) on exactly :func:`data` with::

    df = pd.DataFrame(x, columns=list("abcd")); df["T"] = t; df["E"] = e
    m = CoxPHFitter().fit(df, "T", "E")   # Efron ties, no penalty
    m.params_, m.log_likelihood_, m.baseline_cumulative_hazard_ (at t = 1, 5, 10)
    concordance_index(t, -(x @ m.params_), e)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from confide.modeling.survival_cox import CoxFitError, _sums, fit_cox
from confide.modeling.survival_metrics import harrell_c_exact

LIFELINES_COEF = [0.785645999313252, -0.5418671437498173, 0.3440097076435628, -0.06486177065431475]
LIFELINES_LL = -980.5121394655712
LIFELINES_BASELINE = {1.0: 0.04198088741315989, 5.0: 0.3878461495342856, 10.0: 0.97454083512221}
LIFELINES_C = 0.7354598249111554


def data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 4))
    eta = x @ np.array([0.8, -0.5, 0.3, 0.0])
    t = np.ceil(10 * (rng.exponential(size=300) * np.exp(-eta)) ** (1 / 1.3))
    c = rng.integers(3, 25, size=300)
    return x, np.minimum(t, c).astype(float), (t <= c).astype(float)


def test_fit_matches_lifelines_coxphfitter():
    x, t, e = data()
    assert len(np.unique(t[e == 1])) < e.sum()  # tied event times: Efron's correction matters
    model = fit_cox(x, t, e)
    # lifelines stops at its own tolerance (step norm < 1e-7 on normalised columns): 1e-5.
    np.testing.assert_allclose(model.coef, LIFELINES_COEF, atol=1e-5)
    assert model.log_likelihood == pytest.approx(LIFELINES_LL, abs=1e-8)
    # lifelines reports the baseline at the mean covariates: H0(t) * exp(mean(x) b).
    at_mean = math.exp(float(x.mean(axis=0) @ model.coef))
    for time, expected in LIFELINES_BASELINE.items():
        got = model.baseline_cumhaz[np.searchsorted(model.times, time)] * at_mean
        assert got == pytest.approx(expected, rel=1e-5)
    assert harrell_c_exact(model.risk(x), t, e) == pytest.approx(LIFELINES_C, abs=1e-12)


def test_control_breslow_ties_do_not_match_lifelines():
    x, t, e = data()
    breslow = fit_cox(x, t, e, ties="breslow")
    assert np.max(np.abs(breslow.coef - LIFELINES_COEF)) > 1e-2


def test_partial_likelihood_at_zero_by_hand():
    # times 1, 1, 2, 3 with events 1, 1, 0, 1; at b = 0 every weight is 1.
    x = np.array([[0.5], [-1.0], [2.0], [0.0]])
    t = np.array([1.0, 1.0, 2.0, 3.0])
    e = np.array([True, True, False, True])
    ll_b, grad_b, _ = _sums(x, t, e, np.zeros(1), "breslow")
    assert ll_b == pytest.approx(-(2 * math.log(4) + math.log(1)))
    assert grad_b[0] == pytest.approx((0.5 - 1.0 + 0.0) - 2 * (1.5 / 4) - 0.0)
    ll_e, _, _ = _sums(x, t, e, np.zeros(1), "efron")  # second tied death: 4 - 1/2 * 2
    assert ll_e == pytest.approx(-(math.log(4) + math.log(3) + math.log(1)))


def test_without_ties_efron_equals_breslow_and_predictions_are_survival_curves():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 2))
    t = rng.permutation(80).astype(float) + 1.0
    e = rng.random(80) < 0.7
    a, b = fit_cox(x, t, e), fit_cox(x, t, e, ties="breslow")
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-10)
    s = a.survival_at(x, np.array([0.5, 10.0, 40.0, 80.0]))
    assert np.all(s[:, 0] == 1.0) and np.all(np.diff(s, axis=1) <= 0)


def test_separated_data_without_a_penalty_fails_in_one_line():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    t = np.array([4.0, 3.0, 2.0, 1.0])  # perfectly ordered by x: b diverges
    with pytest.raises(CoxFitError, match="rule: Cox baseline"):
        fit_cox(x, t, np.ones(4), max_iter=30)
    assert np.isfinite(fit_cox(x, t, np.ones(4), penalizer=0.1).coef).all()  # control
