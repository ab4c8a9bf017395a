"""The epsilon check used across the suite has power: it rejects what the old ``0 < eps <= 3``
accepted (one round's epsilon, noise calibrated per round, a loose accountant)."""

from __future__ import annotations

import pytest

from tests.epsilon_checks import accountant_epsilon, assert_run_epsilon, expected_run

RUN = {"target": 3.0, "delta": 1e-5, "train_rows": 1920, "batch_size": 256, "local_epochs": 2}


def test_the_whole_runs_epsilon_passes():
    sigma, q, steps = expected_run(3.0, 1e-5, 1920, 256, 2, rounds=5)
    eps = accountant_epsilon(sigma, q, steps, 1e-5)
    assert 3.0 - 0.01 <= eps <= 3.0
    assert_run_epsilon(eps, rounds=5, noise_multiplier=sigma, steps_taken=steps, **RUN)


def test_one_rounds_epsilon_is_rejected_though_it_lies_in_0_3():
    sigma, q, steps = expected_run(3.0, 1e-5, 1920, 256, 2, rounds=5)
    one_round = accountant_epsilon(sigma, q, steps // 5, 1e-5)
    assert 0 < one_round <= 3.0  # what the old assertion accepted
    with pytest.raises(AssertionError):
        assert_run_epsilon(one_round, rounds=5, **RUN)


def test_noise_calibrated_per_round_is_rejected():
    sigma_one, q, steps_one = expected_run(3.0, 1e-5, 1920, 256, 2, rounds=1)
    per_round_calibrated = accountant_epsilon(sigma_one, q, steps_one, 1e-5)  # reported after R1
    assert 0 < per_round_calibrated <= 3.0
    with pytest.raises(AssertionError):  # a 5-round run must have used more noise
        assert_run_epsilon(per_round_calibrated, rounds=5, noise_multiplier=sigma_one, **RUN)


def test_a_different_delta_or_step_count_is_rejected():
    sigma, q, steps = expected_run(3.0, 1e-5, 1920, 256, 2, rounds=5)
    eps = accountant_epsilon(sigma, q, steps, 1e-5)
    with pytest.raises(AssertionError):
        assert_run_epsilon(eps, rounds=5, steps_taken=steps - 1, **RUN)
    with pytest.raises(AssertionError):
        assert_run_epsilon(accountant_epsilon(sigma, q, steps, 1e-6), rounds=5, **RUN)
