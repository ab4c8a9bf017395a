"""The vertical releases: exact clipping, noise of the planned std from the node's source, pure
noise at non-aligned positions; the top model's regression-calibration correction; top files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from confide.modeling.errors import ModelFileError
from confide.modeling.factory import parse_model_spec
from confide.modeling.noise import SeededNoise
from confide.modeling.vertical_model import (
    VerticalError,
    clipped_normal_second_moment,
    embed,
    embedding_release,
    fit_top,
    label_release,
    load_top_model,
    save_top_model,
)


def test_label_release_clips_exactly_without_noise():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.2, 0.9, -0.5, 1.5])  # out-of-range "probabilities" exercise the clip
    out = label_release(y, p, np.array([3, 0, 5, 1]), 7, 0.0, SeededNoise(0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32([-0.9, -1.0, 0.0, 0.8, 0.0, 1.0, 0.0]))


def test_label_release_noise_std_and_pure_noise_elsewhere():
    n, sigma = 200_000, 4.0
    rng = np.random.default_rng(1)
    aligned = np.sort(rng.choice(n, n // 2, replace=False))
    y = np.zeros(len(aligned))
    out = label_release(y, y, aligned, n, sigma, SeededNoise(3))  # y - p = 0
    assert abs(out.std() / sigma - 1.0) < 0.02
    others = np.setdiff1d(np.arange(n), aligned)
    # with y - p = 0 aligned positions are distributed exactly as the pure-noise ones
    assert ks_2samp(out[aligned], out[others]).pvalue > 0.01
    # control: a residual of 0.3 at the aligned positions is told apart
    shifted = label_release(y + 0.3, y, aligned, n, sigma, SeededNoise(3))
    assert ks_2samp(shifted[aligned], shifted[others]).pvalue < 1e-6


def test_label_release_draws_from_the_source():
    y, p, pos = np.ones(50), np.full(50, 0.4), np.arange(0, 100, 2)
    a = label_release(y, p, pos, 100, 2.0, SeededNoise(7))
    b = label_release(y, p, pos, 100, 2.0, SeededNoise(7))
    c = label_release(y, p, pos, 100, 2.0, SeededNoise(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    expected = SeededNoise(7).gaussian(100, 2.0).numpy().astype(np.float64)
    expected[pos] += 0.6
    np.testing.assert_allclose(a, expected.astype(np.float32), rtol=0, atol=1e-6)


def test_label_release_refuses_a_position_twice():
    with pytest.raises(VerticalError, match="aligned twice"):
        label_release(np.ones(2), np.zeros(2), np.array([1, 1]), 3, 1.0, SeededNoise(0))


def _fixed_bottom(weight: float, bias: float = 0.0) -> torch.nn.Module:
    model = parse_model_spec("logreg", None).build(1)
    with torch.no_grad():
        model.linear.weight.fill_(weight)
        model.linear.bias.fill_(bias)
    return model


def test_embedding_release_standardises_clips_and_has_the_planned_std():
    x = np.linspace(-3, 3, 120_001, dtype=np.float32).reshape(-1, 1)
    raw = embed(_fixed_bottom(0.2, 0.1), x, 1.0)
    model = _fixed_bottom(0.2, 0.1)
    noisy, moments = embedding_release(model, x, 1.5, 0.0, SeededNoise(0))
    # without noise the model now outputs exactly (raw - mean) / std, clipped at 1.5 std
    expected = np.clip((raw - raw.mean()) / raw.std(), -1.5, 1.5)
    clean = embed(model, x, 1.5)
    np.testing.assert_allclose(clean, expected, atol=1e-5)
    assert clean.min() == -1.5 and clean.max() == 1.5  # exact clipping
    np.testing.assert_allclose(noisy, clean.astype(np.float32))
    assert moments == (0.0, clipped_normal_second_moment(1.5))
    model = _fixed_bottom(0.2, 0.1)
    noisy, _ = embedding_release(model, x, 1.5, 2.0, SeededNoise(1))
    clean = embed(model, x, 1.5)
    assert abs((noisy - clean).std() / (2.0 * 1.5) - 1.0) < 0.02
    # the DP moments over 120k rows standardise almost exactly
    assert abs(np.clip((raw - raw.mean()) / raw.std(), -1.5, 1.5) - clean).max() < 0.01
    again_model = _fixed_bottom(0.2, 0.1)
    again, _ = embedding_release(again_model, x, 1.5, 2.0, SeededNoise(1))
    np.testing.assert_array_equal(again, noisy)  # a seeded source reproduces exactly
    other, _ = embedding_release(_fixed_bottom(0.2, 0.1), x, 1.5, 2.0, SeededNoise(2))
    assert not np.array_equal(other, noisy)


def test_clipped_normal_second_moment():
    z = np.random.default_rng(0).normal(size=2_000_000)
    for c in (0.5, 1.0, 2.0):
        assert clipped_normal_second_moment(c) == pytest.approx(
            (np.clip(z, -c, c) ** 2).mean(), rel=0.005
        )


def test_top_correction_recovers_the_clean_coefficient():
    rng = np.random.default_rng(0)
    n, beta, noise_sd = 400_000, 0.8, 1.2
    x_label = rng.normal(size=(n, 1))
    e = rng.normal(0.1, 0.5, size=n)
    logit = -1.0 + 0.5 * x_label[:, 0] + beta * e
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    noisy = e + rng.normal(0, noise_sd, size=n)
    moments = (e.mean(), (e**2).mean())
    lam = 0.25 / (0.25 + noise_sd**2)
    top = fit_top(x_label, [noisy], y, [noise_sd**2], [moments])
    assert top.lambdas[0] == pytest.approx(lam, rel=0.01)
    assert top.w_embedding[0] == pytest.approx(beta, rel=0.08)
    # control: without the correction the coefficient is attenuated by about lambda
    raw = fit_top(x_label, [noisy], y, [noise_sd**2], [moments], correct=False)
    assert raw.w_embedding[0] == pytest.approx(lam * beta, rel=0.1)
    assert abs(raw.w_embedding[0] - beta) > 0.5


def test_top_model_file_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    e = rng.normal(size=500)
    y = (rng.random(500) < 0.3).astype(float)
    top = fit_top(x, [e], y, [0.5], [(0.0, 1.0)])
    save_top_model(tmp_path / "top.pt", top, {"node": "bank"})
    back, extra = load_top_model(tmp_path / "top.pt")
    assert extra == {"node": "bank"}
    np.testing.assert_array_equal(back.predict_proba(x, [e]), top.predict_proba(x, [e]))
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a readable vertical top model"):
        load_top_model(tmp_path / "bad.pt")
