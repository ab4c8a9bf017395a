"""Opacus grad-sample modes (the engine for models the closed form does not cover): hooks,
expanded weights and ghost clipping train the same way as the closed-form engine."""

import functools

import numpy as np
import pytest
import torch

from confide.modeling.dp_accounting import DPSettings, DPState, calibrate
from confide.modeling.factory import build_model
from confide.modeling.local_training import TrainSettings, train_local
from tests.modeling.scripted_batches import ScriptedBatches

NETS = {"logreg": {}, "mlp": {"hidden": [8]}}  # registry name -> hyper-parameters


@functools.cache
def _calibrated(rows, train):
    """The run's DP state (the same for every mode and model: calibrated once)."""
    return calibrate(DPSettings(epsilon=3.0, delta=1e-5), rows, train, rounds=1)


def data(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, d)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.float32)
    return x, y


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("mode", ["hooks", "ew", "ghost"])
def test_every_mode_trains_and_accounts_every_step(net, mode):
    x, y = data()
    train = TrainSettings(learning_rate=0.5, batch_size=50, local_epochs=2)
    dp = DPSettings(epsilon=3.0, delta=1e-5, grad_sample_mode=mode)
    state = _calibrated(len(y), train)
    model = build_model(net, NETS[net], x.shape[1], seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_local(model, x, y, train, dp, state, seed=3, dp_engine="opacus")
    assert result.engine == "opacus"
    assert result.steps == state.planned_steps == result.state.steps_taken
    assert result.state.epsilon(dp.delta, dp.accountant) == pytest.approx(3.0, abs=0.05)
    assert np.isfinite(result.mean_loss)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("mode", ["hooks", "ew", "ghost"])
def test_modes_give_the_same_update_as_the_closed_form(net, mode):
    """Without noise every Opacus mode and the closed form clip and average the same per-sample
    gradients on the same Poisson batches (one of them empty)."""
    x, y = data()
    train = TrainSettings(learning_rate=0.5, batch_size=50, local_epochs=1)
    noiseless = DPState(noise_multiplier=0.0, sample_rate=50 / 400, planned_steps=8)
    rng = np.random.default_rng(1)
    batches = [sorted(rng.choice(400, size=k, replace=False)) for k in (50, 0, 61, 1, 44, 50, 38)]
    batches.append([])  # 8 steps, the last one empty too
    weights = {}
    for engine in ("auto", "opacus"):
        dp = DPSettings(epsilon=3.0, delta=1e-5, max_grad_norm=0.1, grad_sample_mode=mode)
        model = build_model(net, NETS[net], x.shape[1], seed=0)
        result = train_local(
            model, x, y, train, dp, noiseless, 5, noise=ScriptedBatches(batches), dp_engine=engine
        )
        assert result.state.steps_taken == 8
        weights[engine] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(weights["auto"], weights["opacus"], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["hooks", "ew", "ghost"])
def test_opacus_modes_survive_empty_poisson_batches(mode):
    x, y = data(n=2)
    train = TrainSettings(learning_rate=0.5, batch_size=1, local_epochs=10)
    dp = DPSettings(epsilon=8.0, delta=1e-3, grad_sample_mode=mode)
    state = DPState(noise_multiplier=1.0, sample_rate=0.5, planned_steps=20)  # P(empty) = 1/4
    model = build_model("logreg", NETS["logreg"], x.shape[1], seed=0)
    result = train_local(model, x, y, train, dp, state, seed=0, dp_engine="opacus")
    assert result.steps == 20 == result.state.steps_taken
    assert all(torch.isfinite(p).all() for p in model.parameters())
