"""The vertical linear model from DP sufficient statistics (modeling/vertical_linear.py):
exactness without DP, each node's epsilon and noise std, the eigenvalue floor (with a control
draw that breaks the unfloored solve), utility at epsilon 3 per node (slow) and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chi2
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from confide.core.errors import ConfideError
from confide.modeling.dp_accounting import epsilon_for_history
from confide.modeling.errors import ModelFileError
from confide.modeling.noise import SeededNoise
from confide.modeling.training_settings import DPSettings
from confide.modeling.vertical_linear import (
    DEFAULT_CLIP_FEATURE,
    DEFAULT_CLIP_LABEL,
    LinearLayout,
    LinearVerticalModel,
    VerticalLinearError,
    assemble_statistics,
    clip_rows,
    feature_noise,
    feature_square_columns,
    label_alone_model,
    label_block,
    label_noise,
    label_side_columns,
    row_bound,
    run_linear_vertical_arrays,
    solve_statistics,
    stats_sigma,
)
from tests.modeling.vertical_data import vertical_arrays

DP = DPSettings(epsilon=3.0, delta=1e-5)
OFF = DPSettings(enabled=False)
FALSE_ALARM = 1e-6


def _statistics(xl, xf, y, layout):
    side = label_side_columns(xl, y)
    return assemble_statistics(
        layout, label_block(xl, y), xf.T @ side, feature_square_columns(xf).sum(axis=0)
    )


def _auc(model, xl, xf, y):
    return roc_auc_score(y, model.predict_proba(xl, model.feature_logits(xf)))


# --- exactness without DP ---------------------------------------------------------------------


def test_assemble_statistics_equals_the_joint_gram_matrix_exactly():
    rng = np.random.default_rng(0)
    xl = rng.integers(-3, 4, size=(200, 3)).astype(np.float64)  # small whole numbers: every sum
    xf = rng.integers(-3, 4, size=(200, 4)).astype(np.float64)  # is exact in float64
    y = (rng.random(200) < 0.3).astype(np.float64)
    layout = LinearLayout(3, 4)
    big = 1e6  # no row is clipped, and clip_rows scales by exactly 1.0
    xl, xf = clip_rows(xl, big), clip_rows(xf, big)
    a = np.column_stack([xl, np.ones(200), xf, y - 0.5])
    m = _statistics(xl, xf, y, layout)
    np.testing.assert_array_equal(m, a.T @ a)
    assert layout.dim == 9 and a[:, layout.label].ravel().tolist() == (y - 0.5).tolist()
    np.testing.assert_array_equal(a[:, layout.feature], xf)
    # control: the cross block built from the wrong side's columns no longer matches
    wrong = assemble_statistics(
        layout,
        label_block(xl, y),
        xf.T @ label_side_columns(xl, 1.0 - y),
        feature_square_columns(xf).sum(axis=0),
    )
    assert not np.array_equal(wrong, a.T @ a)


def test_without_dp_the_ranking_equals_least_squares_on_the_pooled_columns():
    xl, xf, y, tr, te = vertical_arrays(
        n=3000, d_label=3, d_feature=3, seed=1, intercept=-1.0, label_scale=1.0, feature_scale=1.0
    )
    result = run_linear_vertical_arrays(xl, xf, y, tr, te, OFF, OFF, 100.0, 100.0, seed=0)
    design = np.column_stack([xl, np.ones(len(y)), xf]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(design[tr], y[tr] - 0.5, rcond=None)
    ls_auc = roc_auc_score(y[te], design[te] @ coef)
    assert abs(result.metrics["roc_auc"] - ls_auc) <= 1e-9
    assert result.sigma_label == result.sigma_feature == 0.0
    assert result.epsilon_label == result.epsilon_feature == math.inf
    # the LDA calibration matches a logistic fit in log-loss (measured 0.44807 vs 0.44807;
    # without the shrinkage correction v - w.cov(x, y), i.e. beta = w / v: 0.4605)
    lr = LogisticRegression(max_iter=2000).fit(design[tr], y[tr])
    central = log_loss(y[te], lr.predict_proba(design[te])[:, 1])
    assert abs(result.metrics["log_loss"] - central) <= 0.002
    # control: least squares on the label features alone ranks differently
    alone, *_ = np.linalg.lstsq(design[tr][:, :4], y[tr] - 0.5, rcond=None)
    assert result.metrics["roc_auc"] - roc_auc_score(y[te], design[te][:, :4] @ alone) > 0.05


def test_model_state_round_trips_and_is_checked_strictly():
    model = LinearVerticalModel(np.array([0.5, -1.0]), np.array([2.0]), -0.3, 2.5, 2.0)
    back = LinearVerticalModel.from_state(model.to_state())
    np.testing.assert_array_equal(back.w_label, model.w_label)
    np.testing.assert_array_equal(back.w_feature, model.w_feature)
    assert (back.bias, back.clip_label, back.clip_feature) == (-0.3, 2.5, 2.0)
    state = model.to_state()
    for bad in (
        {**state, "extra": torch.zeros(1, dtype=torch.float64)},
        {k: v for k, v in state.items() if k != "bias"},
        {**state, "bias": torch.zeros(1, dtype=torch.float32)},
        {**state, "w_label": torch.tensor([math.nan, 1.0], dtype=torch.float64)},
        {**state, "clip_label": torch.tensor([-1.0], dtype=torch.float64)},
        {**state, "bias": torch.zeros(2, dtype=torch.float64)},
    ):
        with pytest.raises(ModelFileError) as info:
            LinearVerticalModel.from_state(bad)
        assert "\n" not in str(info.value) and "nan" not in str(info.value)


# --- each node's epsilon and noise --------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [1.0, 3.0])
def test_each_node_spends_exactly_its_epsilon(epsilon):
    dp = DPSettings(epsilon=epsilon, delta=1e-5)
    sigma = stats_sigma(dp)
    assert abs(epsilon_for_history([(sigma, 1.0, 1)], 1e-5, "rdp") - epsilon) <= 1e-3
    # control: 1% less noise already overspends by more than the tolerance
    assert epsilon_for_history([(0.99 * sigma, 1.0, 1)], 1e-5, "rdp") - epsilon > 1e-3
    xl, xf, y, tr, te = vertical_arrays(n=600, d_label=2, d_feature=2, seed=2, intercept=-1.0)
    result = run_linear_vertical_arrays(xl, xf, y, tr, te, dp, dp, seed=0)
    assert abs(result.epsilon_label - epsilon) <= 1e-3
    assert abs(result.epsilon_feature - epsilon) <= 1e-3
    assert result.sigma_label == result.sigma_feature == sigma
    assert stats_sigma(OFF) == 0.0


def _std_consistent(draws: np.ndarray, std: float) -> bool:
    """Two-sided chi-square test that ``draws`` are N(0, std^2), at false alarm 1e-6."""
    stat = float(np.sum((draws / std) ** 2))
    k = draws.size
    return min(chi2.cdf(stat, k), chi2.sf(stat, k)) * 2 > FALSE_ALARM


def test_noise_std_is_sigma_times_the_row_bound():
    layout = LinearLayout(3, 4)
    std = stats_sigma(DP) * row_bound(DEFAULT_CLIP_LABEL, DEFAULT_CLIP_FEATURE)
    source = SeededNoise(7)
    label = [label_noise(source, layout, std) for _ in range(200)]
    assert all(np.array_equal(n, n.T) for n in label)
    iu = np.triu_indices(layout.dim)
    upper = np.concatenate([n[iu] for n in label])
    assert upper.size == 200 * 45
    assert _std_consistent(upper, std)
    assert not _std_consistent(upper, std / 2)  # control: half the std is detected
    pieces = [feature_noise(source, layout, std) for _ in range(200)]
    assert all(c.shape == (4, 5) and g.shape == (10,) for c, g in pieces)
    feature = np.concatenate([np.r_[c.ravel(), g] for c, g in pieces])
    assert _std_consistent(feature, std)
    assert not _std_consistent(feature, std / 2)
    # no DP: no draws at all
    cross, gram = feature_noise(source, layout, 0.0)
    assert not cross.any() and not gram.any() and not label_noise(source, layout, 0.0).any()


def test_feature_noise_touches_only_entries_involving_the_feature_columns():
    xl, xf, y, *_ = vertical_arrays(n=300, d_label=3, d_feature=2, seed=4)
    layout = LinearLayout(3, 2)
    xl, xf = clip_rows(xl, 2.5), clip_rows(xf, 2.0)
    side = label_side_columns(xl, y)
    exact = _statistics(xl, xf, y, layout)
    cross_noise, gram_noise = feature_noise(SeededNoise(1), layout, 10.0)
    noisy = assemble_statistics(
        layout,
        label_block(xl, y),
        xf.T @ side + cross_noise,
        feature_square_columns(xf).sum(axis=0) + gram_noise,
    )
    touched = noisy != exact
    involves_feature = np.zeros_like(touched)
    involves_feature[layout.feature, :] = True
    involves_feature[:, layout.feature] = True
    np.testing.assert_array_equal(touched, involves_feature)
    ls = layout.label_side
    np.testing.assert_array_equal(noisy[np.ix_(ls, ls)], exact[np.ix_(ls, ls)])
    # control: the label node's noise does touch its own block
    with_label = noisy + label_noise(SeededNoise(2), layout, 10.0)
    assert (with_label[np.ix_(ls, ls)] != exact[np.ix_(ls, ls)]).all()


def test_the_simulated_statistics_are_the_exact_ones_plus_each_nodes_seeded_noise():
    xl, xf, y, tr, te = vertical_arrays(n=500, d_label=2, d_feature=3, seed=5, intercept=-1.0)
    result = run_linear_vertical_arrays(xl, xf, y, tr, te, DP, DP, 2.5, 2.0, seed=11)
    layout = LinearLayout(2, 3)
    std = result.sigma_feature * row_bound(2.5, 2.0)
    xlc, xfc = clip_rows(xl[tr], 2.5), clip_rows(xf[tr], 2.0)
    side = label_side_columns(xlc, y[tr])
    cross_noise, gram_noise = feature_noise(SeededNoise(12), layout, std)
    expected = assemble_statistics(
        layout,
        label_block(xlc, y[tr]),
        xfc.T @ side + cross_noise,
        feature_square_columns(xfc).sum(axis=0) + gram_noise,
    ) + label_noise(SeededNoise(11), layout, result.sigma_label * row_bound(2.5, 2.0))
    np.testing.assert_allclose(result.statistics, expected, rtol=0, atol=1e-9)


def test_the_label_node_alone_uses_only_its_own_block():
    xl, xf, y, tr, te = vertical_arrays(n=2000, d_label=3, d_feature=3, seed=8, intercept=-1.0)
    layout = LinearLayout(3, 3)
    xlc, xfc = clip_rows(xl[tr], 2.5), clip_rows(xf[tr], 2.0)
    side = label_side_columns(xlc, y[tr])
    exact = _statistics(xlc, xfc, y[tr], layout)
    alone = label_alone_model(exact, layout, 0.0, 2.5)
    assert alone.w_feature.shape == (0,) and alone.w_label.shape == (3,)
    coef, *_ = np.linalg.lstsq(np.column_stack([xlc, np.ones(len(tr))]), y[tr] - 0.5, rcond=None)
    zero = np.zeros(len(te))
    auc = roc_auc_score(y[te], alone.predict_proba(xl[te], zero))
    assert abs(auc - roc_auc_score(y[te], clip_rows(xl[te], 2.5) @ coef[:3])) <= 1e-9
    # F's noise does not reach it at all; L's noise does (control)
    cross_noise, gram_noise = feature_noise(SeededNoise(3), layout, 50.0)
    with_f = assemble_statistics(
        layout,
        label_block(xlc, y[tr]),
        xfc.T @ side + cross_noise,
        feature_square_columns(xfc).sum(axis=0) + gram_noise,
    )
    same = label_alone_model(with_f, layout, 0.0, 2.5)
    np.testing.assert_array_equal(same.w_label, alone.w_label)
    assert same.bias == alone.bias
    with_l = with_f + label_noise(SeededNoise(4), layout, 50.0)
    assert not np.array_equal(label_alone_model(with_l, layout, 50.0, 2.5).w_label, alone.w_label)


# --- the eigenvalue floor -----------------------------------------------------------------------


def test_the_eigenvalue_floor_is_what_saves_a_pathological_draw():
    xl, xf, y, tr, te = vertical_arrays(
        n=500, d_label=2, d_feature=2, seed=3, intercept=-0.5, label_scale=1.0, feature_scale=1.0
    )
    layout = LinearLayout(2, 2)
    xlc, xfc = clip_rows(xl[tr], 3.0), clip_rows(xf[tr], 3.0)
    m = _statistics(xlc, xfc, y[tr], layout)
    k = layout.dim
    g, b = m[: k - 1, : k - 1], m[: k - 1, k - 1]
    # a symmetric rank-one draw on G with E w* = 2 b: the unfloored solve returns exactly -w*.
    # Its spectral norm is ~20 noise stds (a Gaussian draw's is ~2 std sqrt(5) = 4.5 std): a
    # deliberately extreme draw, the shape a small training set meets at large noise.
    e = 2.0 * np.outer(b, b) / (b @ np.linalg.solve(g, b))
    bad = m.copy()
    bad[: k - 1, : k - 1] -= e
    assert np.linalg.eigvalsh(bad[: k - 1, : k - 1]).min() < -100.0  # G is indefinite
    total_std = row_bound(3.0, 3.0) * math.sqrt(2.0) * stats_sigma(DP)
    clean = _auc(solve_statistics(m, layout, 0.0, 3.0, 3.0), xl[te], xf[te], y[te])
    floored = solve_statistics(bad, layout, total_std, 3.0, 3.0)
    assert np.isfinite(floored.w_label).all() and np.isfinite(floored.w_feature).all()
    assert math.isfinite(floored.bias)
    assert _auc(floored, xl[te], xf[te], y[te]) >= clean - 0.01  # measured 0.836 vs 0.836
    # control: the same draw without the floor ranks the wrong way round
    unfloored = solve_statistics(bad, layout, 0.0, 3.0, 3.0)
    assert _auc(unfloored, xl[te], xf[te], y[te]) < 0.6  # measured 0.164 (= 1 - 0.836)


# --- utility ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_utility_at_epsilon_3_per_node_is_within_0_02_of_centralised():
    xl, xf, y, tr, te = vertical_arrays(intercept=-1.5, label_scale=0.7, feature_scale=0.7)
    pooled = np.column_stack([xl, xf])
    central = LogisticRegression(max_iter=3000).fit(pooled[tr], y[tr])
    p = central.predict_proba(pooled[te])[:, 1]
    central_auc, central_ll = roc_auc_score(y[te], p), log_loss(y[te], p)
    alone = LogisticRegression(max_iter=3000).fit(xl[tr], y[tr])
    alone_auc = roc_auc_score(y[te], alone.predict_proba(xl[te])[:, 1])
    # measured (default clips 2.5 / 2.0): centralised 0.846, label alone 0.749, vertical
    # 0.841 / 0.842 / 0.842 (gap 0.004-0.005), log-loss gap 0.006: the 0.02 bound leaves 4x margin
    for seed in (0, 100, 200):
        result = run_linear_vertical_arrays(xl, xf, y, tr, te, DP, DP, seed=seed)
        auc = result.metrics["roc_auc"]
        assert central_auc - auc <= 0.02, (seed, auc)
        assert auc - alone_auc >= 0.05, (seed, auc)
        assert abs(result.metrics["log_loss"] - central_ll) <= 0.02, (seed, result.metrics)
        assert abs(result.epsilon_label - 3.0) <= 1e-3
        assert abs(result.epsilon_feature - 3.0) <= 1e-3


# --- bad input ----------------------------------------------------------------------------------


def _one_line_error(call) -> str:
    with pytest.raises(VerticalLinearError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, ConfideError)
    assert "\n" not in message and "nan" not in message.lower() and "inf " not in message
    return message


def test_bad_input_gives_one_line_errors_without_values():
    xl, xf, y, tr, te = vertical_arrays(n=200, d_label=2, d_feature=2, seed=6, intercept=-1.0)
    bad = xl.copy()
    bad[3, 1] = np.nan
    assert "x_label" in _one_line_error(
        lambda: run_linear_vertical_arrays(bad, xf, y, tr, te, DP, DP)
    )
    assert "aligned rows" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf[:-1], y, tr, te, DP, DP)
    )
    assert "one label per" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf, y[:-1], tr, te, DP, DP)
    )
    assert "one class" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf, np.zeros_like(y), tr, te, DP, DP)
    )
    assert "only 0 and 1" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf, y * 2.0, tr, te, DP, DP)
    )
    assert "disjoint" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf, y, tr, tr[:5], DP, DP)
    )
    assert "clip_label" in _one_line_error(
        lambda: run_linear_vertical_arrays(xl, xf, y, tr, te, DP, DP, 0.0, 2.0)
    )
    layout = LinearLayout(2, 2)
    m = _statistics(clip_rows(xl, 2.5), clip_rows(xf, 2.0), y, layout)
    broken = m.copy()
    broken[0, 0] = np.inf
    assert "non-finite" in _one_line_error(lambda: solve_statistics(broken, layout, 1.0, 2.5, 2.0))
    tiny = m.copy()
    tiny[2, 2] = 0.5  # the count entry (the ones column)
    assert "at most one row" in _one_line_error(
        lambda: solve_statistics(tiny, layout, 1.0, 2.5, 2.0)
    )
    one_class = _statistics(clip_rows(xl, 2.5), clip_rows(xf, 2.0), np.ones_like(y), layout)
    assert "one class" in _one_line_error(
        lambda: solve_statistics(one_class, layout, 0.0, 2.5, 2.0)
    )
    assert "dimension" in _one_line_error(
        lambda: solve_statistics(m[:-1, :-1], layout, 0.0, 2.5, 2.0)
    )
    # control: the same statistics with both classes solve
    assert np.isfinite(solve_statistics(m, layout, 0.0, 2.5, 2.0).w_label).all()
