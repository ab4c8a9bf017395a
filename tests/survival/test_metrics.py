"""Survival metrics: exact Harrell's C on hand-computed cases, and the federated (binned)
metrics against row-level references: C-index within its stated binning bound, IPCW Brier
exact, time-dependent AUC within the bound, pooling over nodes equal to pooling the rows."""

from __future__ import annotations

import numpy as np
import pytest

from confide.modeling import survival_metrics as sm
from confide.modeling.survival_eval import pooled_survival
from confide.modeling.survival_metrics import (
    MetricGrid,
    censoring_km,
    harrell_c_exact,
    metrics_from_aggregates,
    survival_aggregates,
)
from confide.modeling.tasks import parse_task
from tests.survival.test_spec import shipped

SPEC = parse_task(shipped())


@pytest.mark.parametrize(
    ("risk", "time", "event", "expected"),
    [
        ([3, 2, 1], [1, 2, 3], [1, 1, 0], 1.0),  # higher risk, earlier event: all 3 pairs agree
        ([1, 2, 3], [1, 2, 3], [1, 1, 0], 0.0),  # all 3 pairs disagree
        ([1, 1, 1], [1, 2, 3], [1, 1, 1], 0.5),  # ties in risk count 1/2
        ([3, 1, 2], [1, 2, 3], [1, 1, 0], 2 / 3),  # (1,2) ok, (1,3) ok, (2,3) wrong
        ([2, 1], [1, 1], [1, 0], 1.0),  # tied time, event vs censored: comparable (lifelines)
        ([2, 1], [1, 3], [0, 1], float("nan")),  # censored first: no comparable pair
    ],
)
def test_exact_harrell_c_on_hand_computed_cases(risk, time, event, expected):
    got = harrell_c_exact(np.array(risk, float), np.array(time, float), np.array(event))
    assert got == pytest.approx(expected, nan_ok=True)


def test_censoring_km_on_a_hand_computed_case():
    # time bins 0..3: (censored, events) per bin; at risk 10, 7, 4, 2
    per_time = np.array([[1, 2], [2, 1], [1, 1], [2, 0]])
    g, g_before = censoring_km(per_time)
    expected = np.cumprod([1 - 1 / 10, 1 - 2 / 7, 1 - 1 / 4, 1 - 2 / 2])
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    np.testing.assert_allclose(g_before, np.concatenate([[1.0], expected[:-1]]), rtol=1e-12)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proportional-hazards rows on the shipped grid: curves (n, K), whole-month durations."""
    rng = np.random.default_rng(seed)
    eta = rng.normal(0, 0.8, n)
    edges = np.array(SPEC.intervals)
    curves = np.exp(-((edges[None, :] / 15.0) ** 1.2) * np.exp(eta)[:, None])
    t = np.ceil(15.0 * (rng.exponential(size=n) * np.exp(-eta)) ** (1 / 1.2))
    c = rng.integers(1, 37, n).astype(float)
    return curves, np.minimum(np.minimum(t, c), 36), (t <= c).astype(float)


def brier_rows(curves, t, e, g):
    """Graf's IPCW Brier score at ``g`` on rows (censoring KM on rows, G(T-) for events)."""
    k = SPEC.intervals.index(g)
    s = curves[:, k]
    times = np.arange(37)
    at_risk = np.array([(t >= u).sum() for u in times])
    cens = np.array([((t == u) & (e == 0)).sum() for u in times])
    gk = np.cumprod(1 - cens / np.maximum(at_risk, 1))
    g_before = np.concatenate([[1.0], gk[:-1]])
    ti = t.astype(int)
    died = (t <= g) & (e == 1)
    return float(
        ((s**2) * died / g_before[ti]).sum() + (((1 - s) ** 2) * (t > g) / gk[int(g)]).sum()
    ) / len(t)


def auc_rows(curves, t, e, h):
    """Uno's cumulative/dynamic AUC on rows, IPCW case weights 1/G(T-)."""
    k = SPEC.intervals.index(h)
    risk = 1 - curves[:, k]
    times = np.arange(37)
    at_risk = np.array([(t >= u).sum() for u in times])
    cens = np.array([((t == u) & (e == 0)).sum() for u in times])
    g_before = np.concatenate([[1.0], np.cumprod(1 - cens / np.maximum(at_risk, 1))[:-1]])
    cases = np.flatnonzero((t <= h) & (e == 1))
    controls = np.flatnonzero(t > h)
    w = 1 / g_before[t[cases].astype(int)]
    higher = (risk[cases, None] > risk[None, controls]) + 0.5 * (
        risk[cases, None] == risk[None, controls]
    )
    return float((w[:, None] * higher).sum() / (w.sum() * len(controls)))


def test_binned_metrics_match_row_level_references_within_the_binning_bound():
    curves, t, e = synthetic(4000, seed=3)
    agg = survival_aggregates(curves, t, e, SPEC)
    got = metrics_from_aggregates(agg, SPEC)
    exact = harrell_c_exact(1 - curves[:, SPEC.horizon_index(12.0)], t, e)
    # Binning error: only comparable pairs inside one risk bin move, by at most 1/2 each.
    assert abs(got["c_index"] - exact) <= 0.5 * got["c_index_tie_share"] + 1e-12
    assert abs(got["c_index"] - exact) < 0.005
    for h in SPEC.horizons:  # Brier: squares summed per time bin, so exact (float rounding)
        assert got[f"brier@{h:g}"] == pytest.approx(brier_rows(curves, t, e, h), rel=1e-10)
        assert abs(got[f"auc@{h:g}"] - auc_rows(curves, t, e, h)) < 0.005
    assert got["n"] == 4000 and got["events"] == e.sum()


def test_control_coarse_risk_bins_break_the_tolerance(monkeypatch):
    curves, t, e = synthetic(4000, seed=3)
    exact = harrell_c_exact(1 - curves[:, SPEC.horizon_index(12.0)], t, e)
    monkeypatch.setattr(sm, "RISK_BINS", 4)
    got = metrics_from_aggregates(survival_aggregates(curves, t, e, SPEC), SPEC)
    assert abs(got["c_index"] - exact) > 0.005  # the test above can fail
    assert abs(got["c_index"] - exact) <= 0.5 * got["c_index_tie_share"] + 1e-12  # bound holds


def test_pooling_node_replies_equals_pooling_their_rows():
    curves, t, e = synthetic(3000, seed=5)
    rows = metrics_from_aggregates(survival_aggregates(curves, t, e, SPEC), SPEC)
    replies = []
    for part in (slice(0, 700), slice(700, 3000)):
        agg = survival_aggregates(curves[part], t[part], e[part], SPEC)
        reply = {f"surv_{k}": np.asarray(v).ravel().tolist() for k, v in agg.items()}
        reply |= {"surv_grid": MetricGrid.from_spec(SPEC).to_list(), "loss_sum": 0.0}
        replies.append(reply)
    pooled = pooled_survival(replies)
    for key in ("c_index", "ibs", "auc@3", "auc@12", "brier@6", "n", "events"):
        assert pooled[key] == pytest.approx(rows[key], rel=1e-12)
    for h, groups in rows["calibration"].items():  # float sums in another order: 1e-12
        assert [g["n"] for g in pooled["calibration"][h]] == [g["n"] for g in groups]
        for mine, theirs in zip(pooled["calibration"][h], groups, strict=True):
            assert mine == pytest.approx(theirs, rel=1e-12)
    for groups in pooled["calibration"].values():  # released cells hold >= MIN_CELL customers
        assert groups and all(g["n"] >= sm.MIN_CELL for g in groups)
