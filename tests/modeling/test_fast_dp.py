"""The closed-form DP-SGD engine against Opacus (the reference) and against brute force."""

import logging

import numpy as np
import pytest
import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from confide.modeling.dp_accounting import DPSettings, DPState
from confide.modeling.factory import build_model
from confide.modeling.fast_dp import ClosedFormDPSGD, DPEngineError, unsupported_reason
from confide.modeling.local_training import DP_ENGINE_LOGGER, TrainSettings, train_local
from confide.modeling.models import MLP, LogisticRegression
from confide.modeling.noise import SeededNoise
from tests.modeling.scripted_batches import ScriptedBatches

NETS = {"logreg": {}, "mlp": {"hidden": [8, 4]}}  # registry name -> hyper-parameters
# 100 rows, 10 steps at q = 0.1: two empty batches, a single row, the rest of different sizes
BATCHES = [[0, 3, 5, 7, 9, 11], [], [1, 2, 50, 60, 70, 80, 90, 99], [4], [10, 20, 30, 40, 41]]
BATCHES += [[], [12, 13, 14, 15, 16, 17, 18, 19, 21, 22], [23, 24], [25, 26, 27], [98, 97, 96]]
bce = nn.functional.binary_cross_entropy_with_logits
TOLERANCE = 1e-6  # the bound; float32 rounding of the two computations is ~1e-7


def data(n=100, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.float32)
    return x, y


def per_sample_norms(model, x, y):
    """Brute force: each row's own gradient norm, one autograd call per row."""
    norms = []
    for i in range(len(x)):
        model.zero_grad()
        logit = model(torch.from_numpy(x[i : i + 1]))
        nn.functional.binary_cross_entropy_with_logits(
            logit, torch.from_numpy(y[i : i + 1])
        ).backward()
        norms.append(float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))))
    model.zero_grad(set_to_none=True)
    return np.array(norms)


def train_both(net, sigma, clip, batches=BATCHES, engines=("auto", "opacus"), mode="hooks"):
    x, y = data()
    train = TrainSettings(learning_rate=0.5, batch_size=10, momentum=0.9, proximal_mu=0.1)
    out = {}
    for engine, c in zip(engines, clip if isinstance(clip, tuple) else (clip, clip), strict=True):
        model = build_model(net, NETS[net], x.shape[1], seed=0)
        dp = DPSettings(max_grad_norm=c, grad_sample_mode=mode)
        state = DPState(sigma, 0.1, 10, [(sigma, 0.1, 3)])
        result = train_local(
            model,
            x,
            y,
            train,
            dp,
            state,
            seed=0,
            noise=ScriptedBatches(batches, 1),
            dp_engine=engine,
        )
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        out[engine] = (flat, result)
    return out


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("clip", [0.05, 0.9, 1e3])  # binds on every row / some / none
def test_noiseless_update_equals_opacus(net, clip):
    x, y = data()
    norms = per_sample_norms(build_model(net, NETS[net], x.shape[1], seed=0), x, y)
    binding = (norms > clip).mean()
    assert {0.05: binding == 1.0, 0.9: 0.2 < binding < 0.8, 1e3: binding == 0.0}[clip]
    runs = train_both(net, 0.0, clip)
    (ours, fast), (theirs, ref) = runs["auto"], runs["opacus"]
    assert fast.engine == "closed-form" and ref.engine == "opacus"
    assert float((ours - theirs).abs().max()) <= TOLERANCE
    assert fast.steps == ref.steps == len(BATCHES)
    assert fast.state.history == ref.state.history == [(0.0, 0.1, 3 + len(BATCHES))]
    assert fast.mean_loss == pytest.approx(ref.mean_loss, rel=1e-6)


@pytest.mark.parametrize("net", sorted(NETS))
def test_control_update_without_clipping_differs_from_opacus(net):
    """Control: the same comparison catches an engine that does not clip."""
    runs = train_both(net, 0.0, (1e9, 0.05))
    assert float((runs["auto"][0] - runs["opacus"][0]).abs().max()) > 100 * TOLERANCE


def test_noise_from_the_same_source_gives_the_same_noisy_update():
    """Both engines draw one flat vector per step from the node's source: equal draws."""
    runs = train_both("mlp", 1.0, 0.9)
    (ours, _), (theirs, _) = runs["auto"], runs["opacus"]
    assert float((ours - theirs).abs().max()) <= TOLERANCE


@pytest.mark.parametrize("net", sorted(NETS))
def test_one_step_equals_brute_force_clipped_mean(net):
    """Independent of Opacus: sum of per-row clipped gradients / expected batch size."""
    x, y = data()
    model = build_model(net, NETS[net], x.shape[1], seed=0)
    rows, clip, expected = [0, 3, 5, 7, 9, 11, 40], 0.9, 10
    want = [torch.zeros_like(p) for p in model.parameters()]
    for i in rows:
        model.zero_grad()
        logit = model(torch.from_numpy(x[i : i + 1]))
        nn.functional.binary_cross_entropy_with_logits(
            logit, torch.from_numpy(y[i : i + 1])
        ).backward()
        norm = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for w, p in zip(want, model.parameters(), strict=True):
            w += factor * p.grad
    model.zero_grad(set_to_none=True)
    engine = ClosedFormDPSGD(model, 0.0, clip, expected, SeededNoise(0))
    index = torch.tensor(rows)
    engine.step(torch.from_numpy(x)[index], torch.from_numpy(y)[index])
    for w, p in zip(want, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, w / expected, rtol=0, atol=TOLERANCE)


def _empty_step_grads(step, params, repeats):
    draws = []
    for _ in range(repeats):
        step()
        draws.append(torch.cat([p.grad.detach().flatten() for p in params]))
    return torch.cat(draws)


SIGMA, CLIP, EXPECTED = 1.3, 0.7, 25
# 4,145 parameters x 12 empty steps ~ 50,000 draws: the sample std's relative standard error is
# 1 / sqrt(2 N) = 0.32%; the 2% tolerance is 6.3 standard errors (false alarm < 1e-9)
STD_TOLERANCE = 0.02


def _closed_form_noise(sigma):
    model = MLP(64, (64,))
    engine = ClosedFormDPSGD(model, sigma, CLIP, EXPECTED, SeededNoise(3))
    empty = (torch.zeros(0, 64), torch.zeros(0))
    return _empty_step_grads(lambda: engine.step(*empty), list(model.parameters()), 12)


def _opacus_noise(sigma):
    """Opacus's own DPOptimizer and its own noise (no Confide code) on empty batches."""
    model = GradSampleModule(MLP(64, (64,)))
    optimizer = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=1.0),
        noise_multiplier=sigma,
        max_grad_norm=CLIP,
        expected_batch_size=EXPECTED,
        loss_reduction="mean",
    )

    def step():
        optimizer.zero_grad(set_to_none=True)
        for p in model.parameters():
            p.grad_sample = torch.zeros((0, *p.shape))
        optimizer.pre_step()

    return _empty_step_grads(step, list(model.parameters()), 12)


def test_noise_scale_matches_opacus():
    """With zero gradients the update is pure noise of std sigma * C / expected batch size."""
    theory = SIGMA * CLIP / EXPECTED
    torch.manual_seed(0)  # Opacus's own draws come from torch's default generator
    for noise in (_closed_form_noise(SIGMA), _opacus_noise(SIGMA)):
        assert len(noise) > 45_000
        assert abs(float(noise.std()) / theory - 1) < STD_TOLERANCE
        assert abs(float(noise.mean())) < 6 * theory / len(noise) ** 0.5
    wrong = _closed_form_noise(SIGMA * 1.1)  # control: a 10% wrong multiplier is caught
    assert abs(float(wrong.std()) / theory - 1) > STD_TOLERANCE


def test_zero_noise_multiplier_draws_no_noise():
    assert float(_closed_form_noise(0.0).abs().max()) == 0.0


class WithLayerNorm(nn.Module):
    """A model the closed form does not cover (LayerNorm mixes features through statistics)."""

    def __init__(self, d):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class _Handler(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def engine_log():
    handler, logger = _Handler(), logging.getLogger(DP_ENGINE_LOGGER)
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_unsupported_model_falls_back_to_opacus_and_says_so(engine_log):
    x, y = data()
    train = TrainSettings(learning_rate=0.5, batch_size=10)
    state = DPState(1.0, 0.1, 10)
    model = WithLayerNorm(x.shape[1])
    result = train_local(model, x, y, train, DPSettings(), state, seed=0)
    assert result.engine == "opacus" and result.state.steps_taken == 10
    assert len(engine_log) == 1
    assert "falls back to Opacus" in engine_log[0] and "LayerNorm" in engine_log[0]
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    # control: a shipped model uses the closed form and logs nothing
    mlp = build_model("mlp", {"hidden": [8], "dropout": 0.2}, x.shape[1], seed=0)
    assert train_local(mlp, x, y, train, DPSettings(), state, seed=0).engine == "closed-form"
    assert len(engine_log) == 1


def test_what_the_closed_form_refuses():
    class SubMLP(MLP):
        pass

    shared = nn.Linear(4, 4)
    twice = MLP(4, (4,))
    twice.net = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 1))
    frozen = MLP(4, (4,))
    frozen.net[0].weight.requires_grad_(False)
    assert unsupported_reason(MLP(4, (4, 3), dropout=0.1)) is None
    assert unsupported_reason(build_model("logreg", {}, 4)) is None
    assert "is not one of" in unsupported_reason(SubMLP(4))
    assert "LayerNorm" in unsupported_reason(WithLayerNorm(4))
    assert "more than once" in unsupported_reason(twice)
    assert "frozen" in unsupported_reason(frozen)
    assert "float32" in unsupported_reason(MLP(4).double())
    with pytest.raises(DPEngineError, match=r"cannot train this model.*\(rule: DP engine\)"):
        ClosedFormDPSGD(twice, 1.0, 1.0, 10, SeededNoise(0))


def test_a_forward_that_is_not_the_layers_in_order_is_refused(monkeypatch):
    monkeypatch.setattr(MLP, "forward", lambda self, x: self.net(x).squeeze(-1) * 2)
    with pytest.raises(DPEngineError, match="forward is not its layers in order"):
        ClosedFormDPSGD(MLP(4), 1.0, 1.0, 10, SeededNoise(0))


class RowSumBCE(nn.Module):
    """A per-row criterion over K outputs (one term per row: the DP unit), Opacus-style
    ``reduction`` (what a task such as the survival hazard loss passes as ``loss=``)."""

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, y):
        per_row = bce(logits, y, reduction="none").sum(1)
        return {"none": per_row, "sum": per_row.sum(), "mean": per_row.mean()}[self.reduction]


@pytest.mark.parametrize("model_cls", ["logreg", "mlp"])
def test_several_outputs_with_a_task_loss_equal_opacus(model_cls):
    """K = 3 logits per row and a per-row task loss: still Opacus's update within 1e-6."""
    x, _ = data()
    y = (np.random.default_rng(3).random((len(x), 3)) < 0.4).astype(np.float32)
    train = TrainSettings(learning_rate=0.5, batch_size=10, momentum=0.9)
    flats = {}
    for engine in ("auto", "opacus"):
        torch.manual_seed(0)
        model = LogisticRegression(6, out_dim=3) if model_cls == "logreg" else MLP(6, (8,), 0, 3)
        state = DPState(0.0, 0.1, 10)
        result = train_local(
            model,
            x,
            y,
            train,
            DPSettings(max_grad_norm=0.9),
            state,
            0,
            noise=ScriptedBatches(BATCHES),
            dp_engine=engine,
            loss=RowSumBCE(),
        )
        assert result.engine == {"auto": "closed-form", "opacus": "opacus"}[engine]
        flats[engine] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((flats["auto"] - flats["opacus"]).abs().max()) <= TOLERANCE


def test_an_unknown_engine_is_refused_before_anything_trains():
    from confide.modeling.errors import ConfideError

    x, y = data()
    model = build_model("logreg", {}, x.shape[1], seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    state = DPState(1.0, 0.1, 10)
    with pytest.raises(ConfideError, match=r"dp_engine must be one of auto, opacus \(rule: DP"):
        train_local(model, x, y, TrainSettings(), DPSettings(), state, 0, dp_engine="x")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert state.steps_taken == 0
