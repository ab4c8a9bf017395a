"""The Laplace mechanism: OpenDP's sampler, the scale from sensitivity and epsilon, and the
exact 95% half-width of sums of Laplace noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from confide.analytics.mechanisms import (
    MechanismError,
    OpenDPLaplace,
    SeededLaplace,
    abs_quantile,
    laplace_release,
    laplace_scale,
    noise_sampler,
)


def test_scale_is_sensitivity_over_epsilon_and_opendp_agrees():
    assert laplace_scale(20_000.0, 1.0) == pytest.approx(20_000.0, rel=1e-15)
    assert laplace_scale(5.0, 0.25) == pytest.approx(20.0, rel=1e-15)
    with pytest.raises(MechanismError):
        laplace_scale(1.0, 0.0)
    with pytest.raises(MechanismError):
        laplace_scale(0.0, 1.0)


def test_single_laplace_half_width_is_b_ln20():
    assert abs_quantile([3.0]) == pytest.approx(3.0 * math.log(20), rel=1e-12)


@pytest.mark.parametrize("x", [4.1137])
def test_two_laplace_half_width_matches_the_closed_form(x):
    # L1 + L2, both scale 1: P(|X| > x) = exp(-x)(2 + x)/2, which is 0.05 at x = 4.1137.
    assert math.exp(-x) * (2 + x) / 2 == pytest.approx(0.05, abs=1e-4)
    # grid step 2·(14 + 8·2)/8192 = 0.0073: the quantile is exact to one step
    assert abs_quantile([1.0, 1.0]) == pytest.approx(x, abs=0.0075)


def test_half_width_of_unequal_scales_matches_monte_carlo():
    rng = np.random.default_rng(0)
    scales = [1.0, 2.0, 5.0]
    draws = sum(rng.laplace(0, b, 400_000) for b in scales)
    # 400,000 draws: the empirical 95th percentile's standard error is ~0.1% of it
    assert abs_quantile(scales) == pytest.approx(np.quantile(np.abs(draws), 0.95), rel=0.01)


def test_opendp_noise_has_the_requested_scale():
    noisy = OpenDPLaplace().add_laplace(np.zeros(4_000), 10.0)
    # mean |Laplace(b)| = b (sd b); 4,000 draws: standard error 1.6%, so 8% is 5 standard errors
    assert np.mean(np.abs(noisy)) == pytest.approx(10.0, rel=0.08)
    assert len(set(noisy.tolist())) == len(noisy)  # fresh noise per value


def test_control_zero_noise_would_be_detected():
    zero = np.zeros(4_000)
    assert np.mean(np.abs(zero)) != pytest.approx(10.0, rel=0.08)


def test_release_records_the_scale_and_refuses_non_finite_values():
    rel = laplace_release(np.array([1.0, 2.0]), 2.0, 0.5, SeededLaplace(1))
    assert rel["scale"] == 4.0 and len(rel["values"]) == 2
    with pytest.raises(MechanismError):
        laplace_release(np.array([np.inf]), 1.0, 1.0, SeededLaplace(1))


def test_seeded_sampler_is_reproducible_and_labelled():
    a = SeededLaplace(5).add_laplace(np.zeros(3), 1.0)
    b = SeededLaplace(5).add_laplace(np.zeros(3), 1.0)
    assert a.tolist() == b.tolist()
    assert "simulation only" in SeededLaplace(5).name
    assert noise_sampler().name == "opendp"
    with pytest.raises(MechanismError, match="ANALYSIS-SPEC"):
        noise_sampler("seeded")
