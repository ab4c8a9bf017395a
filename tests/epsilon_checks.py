"""What a node's reported epsilon must be, computed independently of Confide's DP code.

Noise is calibrated once for the run's planned steps with Opacus's ``get_noise_multiplier``
(whose search stops within ``CALIBRATION_TOLERANCE`` below the target), so after the last
planned step the accountant's epsilon lies in ``[target - tolerance, target]``. A node that
reported one round's epsilon, or calibrated per round, falls outside that band.
"""

from __future__ import annotations

import math

import pytest
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier

from confide.modeling.dp_accounting import RDP_ALPHAS

__all__ = [
    "CALIBRATION_TOLERANCE",
    "accountant_epsilon",
    "assert_epsilon_at_target",
    "assert_run_epsilon",
    "expected_run",
]

CALIBRATION_TOLERANCE = 0.01  # Opacus's default epsilon_tolerance in get_noise_multiplier


def expected_run(
    target: float, delta: float, train_rows: int, batch_size: int, local_epochs: int, rounds: int
) -> tuple[float, float, int]:
    """(noise multiplier, sample rate, planned steps) of a node's run, straight from Opacus."""
    per_epoch = math.ceil(train_rows / batch_size)
    steps = rounds * local_epochs * per_epoch
    sigma = get_noise_multiplier(
        target_epsilon=target,
        target_delta=delta,
        sample_rate=1.0 / per_epoch,
        steps=steps,
        accountant="rdp",
        alphas=RDP_ALPHAS,
    )
    return float(sigma), 1.0 / per_epoch, steps


def accountant_epsilon(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """Opacus's RDP accountant over ``steps`` sampled-Gaussian steps."""
    acc = RDPAccountant()
    acc.history = [(sigma, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta, alphas=RDP_ALPHAS))


def assert_run_epsilon(
    reported: float,
    *,
    target: float,
    delta: float,
    train_rows: int,
    batch_size: int,
    local_epochs: int,
    rounds: int,
    noise_multiplier: float | None = None,
    steps_taken: int | None = None,
) -> None:
    """The reported epsilon after the run's last round equals the accountant over every planned
    step (relative 1e-6) and the target within the calibration tolerance."""
    sigma, q, steps = expected_run(target, delta, train_rows, batch_size, local_epochs, rounds)
    if noise_multiplier is not None:
        assert noise_multiplier == pytest.approx(sigma, rel=1e-9)
    if steps_taken is not None:
        assert steps_taken == steps
    assert_epsilon_at_target(reported, target=target, delta=delta, sample_rate=q, steps=steps)


def assert_epsilon_at_target(
    reported: float, *, target: float, delta: float, sample_rate: float, steps: int
) -> None:
    """``reported`` is the accountant's epsilon for the noise Opacus calibrates to ``target``
    over ``steps`` steps at ``sample_rate`` (relative 1e-6), and lies within the calibration
    tolerance below the target."""
    sigma = get_noise_multiplier(
        target_epsilon=target,
        target_delta=delta,
        sample_rate=sample_rate,
        steps=steps,
        accountant="rdp",
        alphas=RDP_ALPHAS,
    )
    expected = accountant_epsilon(float(sigma), sample_rate, steps, delta)
    assert reported == pytest.approx(expected, rel=1e-6)
    assert target - CALIBRATION_TOLERANCE <= reported <= target + 1e-9
