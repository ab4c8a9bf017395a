"""Vertical privacy plans: each node's composed epsilon equals its dp.epsilon, the release part
alone equals its own epsilon, and a history without the release is told apart."""

from __future__ import annotations

import math

import pytest

from confide.modeling.dp_accounting import epsilon_for_history
from confide.modeling.training_settings import DPSettings, TrainSettings
from confide.modeling.vertical_dp import (
    MOMENT_SIGMA_RATIO,
    PLAN_TOLERANCE,
    VerticalPlan,
    VerticalPlanError,
    plan_feature_node,
    plan_label_node,
    release_sigma_for,
)

DP = DPSettings(epsilon=3.0, delta=1e-5)
TRAIN = TrainSettings(batch_size=256, local_epochs=2)


@pytest.mark.parametrize("planner", [plan_label_node, plan_feature_node])
@pytest.mark.parametrize(("n_rows", "release_eps"), [(3_000, 1.0), (22_000, 0.8)])
def test_composed_epsilon_hits_the_target(planner, n_rows, release_eps):
    plan = planner(DP, n_rows, TRAIN, 3, release_eps)
    assert abs(plan.epsilon(DP.delta, DP.accountant) - DP.epsilon) <= PLAN_TOLERANCE
    assert abs(plan.release_epsilon(DP.delta, DP.accountant) - release_eps) <= PLAN_TOLERANCE
    assert plan.steps == 3 * 2 * math.ceil(n_rows / 256)
    assert plan.sample_rate == 1.0 / math.ceil(n_rows / 256)
    # control: the same plan with its release(s) left out of the history spends less, by more
    # than the tolerance, so an accountant that forgot the release would be caught
    sgd_only = epsilon_for_history(plan.history()[:1], DP.delta, DP.accountant)
    assert DP.epsilon - sgd_only > 10 * PLAN_TOLERANCE


def test_feature_plan_has_the_moment_release():
    plan = plan_feature_node(DP, 20_000, TRAIN, 2, 1.5)
    assert plan.moment_sigma == pytest.approx(MOMENT_SIGMA_RATIO * plan.release_sigma)
    assert plan.history()[1:] == [(plan.release_sigma, 1.0, 1), (plan.moment_sigma, 1.0, 1)]
    label = plan_label_node(DP, 20_000, TRAIN, 2, 1.5)
    assert label.moment_sigma is None and label.history()[1:] == [(label.release_sigma, 1.0, 1)]


def test_two_feature_nodes_cost_the_label_node_two_releases():
    one = plan_label_node(DP, 20_000, TRAIN, 2, 1.0)
    two = plan_label_node(DP, 20_000, TRAIN, 2, 1.0, releases=2)
    assert two.history()[1] == (two.release_sigma, 1.0, 2)
    assert two.release_sigma > one.release_sigma
    assert abs(two.release_epsilon(DP.delta, DP.accountant) - 1.0) <= PLAN_TOLERANCE


def test_dp_off_plans_no_noise():
    plan = plan_feature_node(DPSettings(enabled=False), 1_000, TRAIN, 2, 1.0)
    assert (plan.sgd_sigma, plan.release_sigma, plan.moment_sigma) == (0.0, 0.0, 0.0)
    assert plan.epsilon(1e-5, "rdp") == math.inf and plan.sgd_state() is None


@pytest.mark.parametrize("release_eps", [0.0, 3.0, 4.0, float("nan")])
def test_release_epsilon_must_leave_room_for_training(release_eps):
    with pytest.raises(VerticalPlanError, match="rule: vertical epsilon split"):
        plan_label_node(DP, 1_000, TRAIN, 2, release_eps)


def test_plan_is_frozen():
    plan = VerticalPlan(1.0, 0.1, 10, 2.0, None)
    with pytest.raises(AttributeError):
        plan.sgd_sigma = 0.5  # type: ignore[misc]


@pytest.mark.parametrize("accountant", ["prv", "gdp"])
@pytest.mark.filterwarnings("ignore")  # GDP is experimental; both overflow on the probes
def test_large_epsilon_calibrates_under_prv_and_gdp(accountant):
    """Under PRV and GDP the accountant fails (or overflows) at sigma 0.01, the bracket's
    lower end under RDP; the calibration walks down from sigma 1 instead of crashing."""
    sigma = release_sigma_for(8.0, 1e-5, accountant, moment=False)
    assert sigma < 1.0
    assert abs(epsilon_for_history([(sigma, 1.0, 1)], 1e-5, accountant) - 8.0) <= 1e-3
    # control: 1% less noise already overspends by more than the tolerance
    assert epsilon_for_history([(0.99 * sigma, 1.0, 1)], 1e-5, accountant) - 8.0 > 1e-3
    # a target beyond what the accountant can evaluate is one clear error, not a crash
    with pytest.raises(VerticalPlanError, match="less noise than the accountant can evaluate"):
        release_sigma_for(1e6, 1e-5, accountant, moment=False)
