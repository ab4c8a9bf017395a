"""The discrete-time hazard head and its per-customer loss under DP-SGD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from confide.modeling.factory import build_model
from confide.modeling.fast_dp import ClosedFormDPSGD
from confide.modeling.noise import SeededNoise
from confide.modeling.survival_model import (
    DiscreteHazardLoss,
    interval_targets,
    median_retention,
    survival_from_logits,
)
from confide.modeling.tasks import parse_task
from tests.survival.test_spec import shipped

SPEC = parse_task(shipped())


def sp(z: float) -> float:  # BCE with target 0 = softplus(z); with target 1 = softplus(-z)
    return float(np.log1p(np.exp(z)))


def test_loss_sums_the_intervals_observed_until_event_or_censoring():
    loss = DiscreteHazardLoss((1.0, 2.0, 3.0), reduction="none")
    z = torch.tensor([[0.1, -0.2, 0.3]] * 5)
    y = torch.tensor([[2.0, 1.0], [1.5, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    got = loss(z, y).tolist()
    expected = [
        sp(0.1) + sp(0.2),  # event in interval 2: survived 1, churned in 2
        sp(0.1),  # censored inside interval 2: survived 1 only
        sp(0.1) + sp(-0.2),  # censored at the end of interval 2: survived 1 and 2
        sp(-0.1),  # event at time 0: interval 1
        sp(0.1) + sp(-0.2) + sp(0.3),  # censored at max: survived all
    ]
    assert got == pytest.approx(expected, rel=1e-6)
    targets, mask = interval_targets(y[:, 0], y[:, 1], torch.tensor([1.0, 2.0, 3.0]))
    assert mask.tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert targets.tolist()[0] == [0, 1, 0]


def test_survival_curves_and_median_retention():
    logits = np.log(np.full((2, 14), 0.1 / 0.9))  # hazard 0.1 per interval
    logits[1] = np.log(0.01 / 0.99)
    curves = survival_from_logits(logits)
    np.testing.assert_allclose(curves[0], 0.9 ** np.arange(1, 15), rtol=1e-12)
    median = median_retention(curves, SPEC)
    assert median[0] == 8.0  # 0.9^7 = 0.478 at the 7th edge (8 months)
    assert np.isnan(median[1])  # beyond the last horizon


def per_sample_reference(model, loss, xb, yb, clip, expected_batch, per_period=False):
    """DP-SGD's clipped sum by brute force: one gradient per customer (or, for the control,
    one per person-period term), clipped, summed, divided by the expected batch size."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(len(xb)):
        z = model(xb[i : i + 1]).reshape(1, -1)
        if per_period:
            targets, mask = interval_targets(yb[i : i + 1, 0], yb[i : i + 1, 1], loss.upper)
            terms = F.binary_cross_entropy_with_logits(z, targets, reduction="none") * mask
            units = [terms[0, k] for k in range(terms.shape[1]) if mask[0, k] > 0]
        else:
            units = [loss(z, yb[i : i + 1]).sum()]
        for unit in units:
            grads = torch.autograd.grad(unit, params, retain_graph=True)
            norm = torch.sqrt(sum((g**2).sum() for g in grads))
            factor = min(1.0, clip / (float(norm) + 1e-6))
            for acc, g in zip(total, grads, strict=True):
                acc += factor * g
    return [t / expected_batch for t in total]


@pytest.mark.parametrize("name,params", [("logreg", {}), ("mlp", {"hidden": [8]})])
def test_dp_sgd_clips_one_gradient_per_customer(name, params):
    torch.manual_seed(0)
    model = build_model(name, params, 6, seed=3, out_dim=SPEC.output_dim)
    loss = DiscreteHazardLoss.for_task(SPEC)
    xb = torch.rand(12, 6)
    yb = torch.tensor([[float(d), float(d % 3 == 0)] for d in range(0, 36, 3)])
    engine = ClosedFormDPSGD(model, 0.0, 0.5, 10, SeededNoise(0), loss=loss)
    engine.step(xb, yb)
    got = [p.grad.clone() for p in model.parameters()]
    engine.close()
    reference = per_sample_reference(model, loss, xb, yb, 0.5, 10)
    for g, r in zip(got, reference, strict=True):
        torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-5)
    control = per_sample_reference(model, loss, xb, yb, 0.5, 10, per_period=True)
    assert max(float((g - c).abs().max()) for g, c in zip(got, control, strict=True)) > 1e-3


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_opacus_fallback_trains_the_survival_head_exactly_like_the_closed_form_engine(mode):
    """Noise off, same Poisson batches: Opacus (the reference) and the closed-form engine give
    the same K-output model with the survival criterion."""
    from confide.modeling.dp_accounting import DPState
    from confide.modeling.local_training import train_local
    from confide.modeling.training_settings import DPSettings, TrainSettings

    rng = np.random.default_rng(0)
    x = rng.random((300, 6)).astype(np.float32)
    y = np.column_stack([rng.integers(0, 37, 300), rng.integers(0, 2, 300)]).astype(np.float32)
    train = TrainSettings(learning_rate=0.5, batch_size=50, local_epochs=1)
    dp = DPSettings(max_grad_norm=0.3, grad_sample_mode=mode)
    models = {}
    for engine in ("auto", "opacus"):
        model = build_model("mlp", {"hidden": [8]}, 6, seed=1, out_dim=SPEC.output_dim)
        state = DPState(0.0, 50 / 300, 6)
        result = train_local(
            model, x, y, train, dp, state, seed=4, dp_engine=engine,
            loss=DiscreteHazardLoss.for_task(SPEC),
        )  # fmt: skip
        assert result.engine == ("closed-form" if engine == "auto" else "opacus")
        assert result.steps == 6
        models[engine] = model
    for a, b in zip(models["auto"].parameters(), models["opacus"].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    plain = build_model("mlp", {"hidden": [8]}, 6, seed=1, out_dim=SPEC.output_dim)
    moved = max(
        float((a - b).detach().abs().max())
        for a, b in zip(models["auto"].parameters(), plain.parameters(), strict=True)
    )
    assert moved > 1e-3  # control: training changed the weights, so the match is not vacuous
