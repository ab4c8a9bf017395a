"""Noise calibration is searched once per (epsilon, delta, sample rate, steps, accountant) per
process: nodes whose row counts give the same sample rate and steps share it, exactly."""

from __future__ import annotations

from opacus.accountants.utils import get_noise_multiplier

from confide.modeling import dp_accounting as acc
from confide.modeling.training_settings import DPSettings, TrainSettings

DP = DPSettings(enabled=True, epsilon=3.0, delta=1e-5)
TRAIN = TrainSettings(batch_size=256, local_epochs=1)


def test_nodes_with_the_same_sample_rate_and_steps_share_one_search():
    acc._noise_multiplier.cache_clear()
    first = acc.calibrate(DP, 2400, TRAIN, rounds=1)
    second = acc.calibrate(DP, 2401, TRAIN, rounds=1)  # same 10 steps per epoch
    assert acc._noise_multiplier.cache_info().hits == 1
    assert second == first
    direct = get_noise_multiplier(
        target_epsilon=DP.epsilon,
        target_delta=DP.delta,
        sample_rate=first.sample_rate,
        steps=first.planned_steps,
        accountant=DP.accountant,
        **acc.accountant_kwargs(DP.accountant),
    )
    assert first.noise_multiplier == float(direct)  # the cache returns Opacus's own answer


def test_control_another_sample_rate_is_searched_again():
    acc._noise_multiplier.cache_clear()
    a = acc.calibrate(DP, 2400, TRAIN, rounds=1)
    b = acc.calibrate(DP, 2700, TRAIN, rounds=1)  # 11 steps per epoch: its own search
    assert acc._noise_multiplier.cache_info().misses == 2
    assert a.sample_rate != b.sample_rate and a.noise_multiplier != b.noise_multiplier
