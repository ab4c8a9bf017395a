"""Label leakage (Li et al. 2022) from what a feature node receives: the norm, direction and
best one-dimensional attacks reach AUC >= 0.95 without label DP and land within 0.05 of 0.5 with
the label release at the configured label epsilon; a 10x weaker defence fails that tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from confide.modeling.label_leakage import (
    LabelLeakageError,
    attack_aucs,
    direction_attack_auc,
    release_auc_bound,
)
from confide.modeling.noise import SeededNoise
from confide.modeling.training_settings import DPSettings, TrainSettings
from confide.modeling.vertical_dp import plan_label_node
from confide.modeling.vertical_model import label_release

#: The split-learning label_dp_epsilon chosen in docs/vertical.md ("Split learning: choosing
#: the release epsilons").
LABEL_DP_EPSILON = 0.8
N_TRAIN = 22_400  # the aligned training rows of the ~28k-row synthetic federation
TOLERANCE = 0.05


def _imbalanced(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with ~10% positives and a label model's probabilities that rank them (AUC ~0.75),
    as a DP label model on the label node's own features would."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=N_TRAIN)
    y = (rng.random(N_TRAIN) < 1 / (1 + np.exp(-(-2.6 + 0.9 * score)))).astype(float)
    p = 1 / (1 + np.exp(-(-2.5 + 0.8 * score)))
    return y, p


def _release(sigma: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    y, p = _imbalanced()
    positions = np.arange(N_TRAIN)
    return label_release(y, p, positions, N_TRAIN, sigma, SeededNoise(seed)), y


def _configured_sigma() -> float:
    plan = plan_label_node(
        DPSettings(epsilon=3.0), N_TRAIN, TrainSettings(local_epochs=2), 10, LABEL_DP_EPSILON
    )
    return plan.release_sigma


def test_attacks_recover_labels_without_label_dp():
    g, y = _release(0.0)
    aucs = attack_aucs(g, y)
    assert aucs["norm"] >= 0.95 and aucs["direction"] >= 0.95 and aucs["best"] >= 0.95


def test_attacks_are_near_chance_with_label_dp_and_not_with_a_weak_defence():
    sigma = _configured_sigma()
    assert sigma == pytest.approx(4.97, abs=0.02)
    g, y = _release(sigma)
    aucs = attack_aucs(g, y)
    assert all(abs(auc - 0.5) <= TOLERANCE for auc in aucs.values()), aucs
    # no attack on one row can beat the Gaussian bound; the best attack comes close to it
    assert aucs["best"] <= release_auc_bound(sigma) <= 0.5 + TOLERANCE + 0.01
    # control: a 10x smaller noise lets the direction and best attacks through
    weak, _ = _release(sigma / 10)
    weak_aucs = attack_aucs(weak, y)
    assert weak_aucs["best"] - 0.5 > TOLERANCE and weak_aucs["direction"] - 0.5 > TOLERANCE


def test_direction_attack_needs_a_positive_example():
    g, y = _release(0.0)
    with pytest.raises(LabelLeakageError, match="positive example"):
        direction_attack_auc(g, y, int(np.flatnonzero(y == 0)[0]))
