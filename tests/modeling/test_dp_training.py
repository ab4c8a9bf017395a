"""DP-SGD accounting across rounds: the reported epsilon covers every step of the run."""

import itertools

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from confide.modeling.dp_accounting import (
    RDP_ALPHAS,
    DPSettings,
    calibrate,
    epsilon_for_history,
    planned_steps,
    steps_per_epoch,
)
from confide.modeling.errors import BudgetExceeded
from confide.modeling.factory import build_model
from confide.modeling.local_training import TrainSettings, train_local
from confide.modeling.prediction import predict_proba
from tests.epsilon_checks import assert_epsilon_at_target

NET = ("logreg", {})  # registry name and hyper-parameters


def data(n=600, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.float32)
    return x, y


def test_epsilon_after_rounds_equals_accountant_over_all_steps():
    x, y = data()
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=1)
    dp = DPSettings(epsilon=2.0, delta=1e-5)
    rounds = 4
    state = calibrate(dp, len(y), train, rounds)
    model = build_model(*NET, x.shape[1], seed=0)
    per_round = []
    for r in range(rounds):
        result = train_local(model, x, y, train, dp, state, seed=r)
        state = result.state
        per_round.append(state.epsilon(dp.delta, dp.accountant))
    total_steps = rounds * steps_per_epoch(len(y), train.batch_size)
    assert state.steps_taken == total_steps == planned_steps(len(y), train, rounds)
    fresh = RDPAccountant()
    fresh.history = [(state.noise_multiplier, state.sample_rate, total_steps)]
    expected = fresh.get_epsilon(delta=dp.delta, alphas=RDP_ALPHAS)
    assert per_round[-1] == pytest.approx(expected, rel=1e-9)
    # cumulative, not one round's: strictly increasing and ending at the target
    assert all(a < b for a, b in itertools.pairwise(per_round))
    one_round = epsilon_for_history(
        [(state.noise_multiplier, state.sample_rate, total_steps // rounds)], dp.delta, "rdp"
    )
    assert per_round[-1] > one_round * 1.5
    assert_epsilon_at_target(
        per_round[-1],
        target=dp.epsilon,
        delta=dp.delta,
        sample_rate=state.sample_rate,
        steps=total_steps,
    )


def test_each_step_is_charged_training_stops_before_the_cap_then_refuses():
    x, y = data()
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=1)
    dp = DPSettings(epsilon=1.0, delta=1e-5)
    state = calibrate(dp, len(y), train, rounds=1)
    cap = 0.8  # below what one full round spends (0.99): the round must stop part-way
    model = build_model(*NET, x.shape[1], seed=0)
    result = train_local(model, x, y, train, dp, state, seed=0, max_epsilon=cap)
    per_round = steps_per_epoch(len(y), train.batch_size)
    assert 0 < result.steps < per_round and result.state.steps_taken == result.steps
    spent = result.state.epsilon(dp.delta, dp.accountant)
    exact = RDPAccountant()
    exact.history = [(state.noise_multiplier, state.sample_rate, result.steps)]
    assert abs(spent - exact.get_epsilon(delta=dp.delta, alphas=RDP_ALPHAS)) < 1e-9
    assert spent <= cap
    one_more = [(state.noise_multiplier, state.sample_rate, result.steps + 1)]
    assert epsilon_for_history(one_more, dp.delta, "rdp") > cap  # stopped at the last step
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(BudgetExceeded, match=r"exhausted \(rule: budget per step\)"):
        train_local(model, x, y, train, dp, result.state, seed=1, max_epsilon=cap)
    for p, q in zip(model.parameters(), before, strict=True):
        assert (p == q).all()  # nothing trained


def test_cap_above_the_round_changes_nothing():
    x, y = data()
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=2)
    dp = DPSettings(epsilon=1.0, delta=1e-5)
    state = calibrate(dp, len(y), train, rounds=1)
    runs = []
    for cap in (None, 1.0):
        model = build_model(*NET, x.shape[1], seed=0)
        res = train_local(model, x, y, train, dp, state, seed=3, max_epsilon=cap)
        runs.append((res.steps, res.state.history, predict_proba(model, x)))
    assert runs[0][0] == runs[1][0] == 2 * steps_per_epoch(len(y), train.batch_size)
    assert runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_same_seed_same_model_and_dp_state_roundtrip():
    x, y = data()
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=2)
    dp = DPSettings(epsilon=3.0, delta=1e-5)
    state = calibrate(dp, len(y), train, rounds=1)
    outs = []
    for _ in range(2):
        model = build_model(*NET, x.shape[1], seed=7)
        res = train_local(model, x, y, train, dp, state, seed=11)
        outs.append((predict_proba(model, x), res.state))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    restored = type(outs[0][1]).from_dict(outs[0][1].to_dict())
    assert restored == outs[0][1]


def test_learns_without_dp_and_fedprox_pull_keeps_weights_near_anchor():
    x, y = data(2000)
    model = build_model(*NET, x.shape[1], seed=0)
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=3)
    train_local(model, x, y, train, DPSettings(enabled=False), None, seed=0)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, predict_proba(model, x)) > 0.8
    anchored = build_model(*NET, x.shape[1], seed=0)
    free = build_model(*NET, x.shape[1], seed=0)
    prox = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=3, proximal_mu=0.5)
    train_local(anchored, x, y, prox, DPSettings(enabled=False), None, seed=0)
    train_local(free, x, y, train, DPSettings(enabled=False), None, seed=0)
    start = build_model(*NET, x.shape[1], seed=0)

    def dist(model):
        pairs = zip(model.parameters(), start.parameters(), strict=True)
        return sum(float(((p - q) ** 2).sum().detach()) for p, q in pairs)

    assert dist(anchored) < dist(free)


def test_dp_training_learns_and_the_noise_source_drives_it():
    """The closed-form engine at epsilon = 3 still learns; ``noise=None`` is SeededNoise(seed)
    and a different source (other seed) gives other batches and noise."""
    from sklearn.metrics import roc_auc_score

    from confide.modeling.noise import SeededNoise

    x, y = data(4000)
    train = TrainSettings(learning_rate=1.0, batch_size=64, local_epochs=2)
    dp = DPSettings(epsilon=3.0, delta=1e-5)
    state = calibrate(dp, len(y), train, rounds=1)
    probs = {}
    for name, noise in (("default", None), ("same", SeededNoise(4)), ("other", SeededNoise(5))):
        model = build_model(*NET, x.shape[1], seed=0)
        result = train_local(model, x, y, train, dp, state, seed=4, noise=noise)
        assert result.engine == "closed-form" and result.steps == state.planned_steps
        probs[name] = predict_proba(model, x)
    assert roc_auc_score(y, probs["default"]) > 0.83  # x0 itself (the oracle) scores 0.856
    np.testing.assert_array_equal(probs["default"], probs["same"])
    assert not np.array_equal(probs["default"], probs["other"])
