"""The built-in analysis end to end in one process: every part present, and the reported 95%
errors cover the noise of every released number (counts, sums, means, variances, histograms,
quantiles, RFM cells, quality rates), per node and federated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from confide.analytics.combine import combine_releases
from confide.analytics.inprocess import run_analysis_in_process
from confide.analytics.mechanisms import SeededLaplace
from confide.analytics.node import release_prepared
from confide.analytics.prepare import prepare
from tests.analytics.helpers import builtin_spec
from tests.analytics.test_privacy_loss import ExactSampler


def _pairs(noisy, exact, out):
    """(noisy value, exact value, error95) for every estimate in two parallel outputs."""
    if isinstance(noisy, dict):
        if "value" in noisy and "error95" in noisy:
            if noisy["value"] is not None and exact["value"] is not None:
                out.append((noisy["value"], exact["value"], noisy["error95"]))
            return out
        for key in noisy:
            if key in ("spec", "parts", "noise"):
                continue
            _pairs(noisy[key], exact[key], out)
    elif isinstance(noisy, list):
        for a, b in zip(noisy, exact, strict=True):
            _pairs(a, b, out)
    return out


@pytest.fixture(scope="module")
def prepared(default_frames):
    spec = builtin_spec()
    prep = {n: prepare(spec, f, n) for n, f in default_frames.items()}
    exact = combine_releases(
        spec, {n: release_prepared(spec, p, ExactSampler()) for n, p in prep.items()}
    )
    return spec, prep, exact


def _coverage(prepared, sampler) -> float:
    spec, prep, exact = prepared
    noisy = combine_releases(spec, {n: release_prepared(spec, p, sampler) for n, p in prep.items()})
    pairs = np.array(_pairs(noisy, exact, []), dtype=float)
    assert len(pairs) > 500
    return float(np.mean(np.abs(pairs[:, 0] - pairs[:, 1]) <= pairs[:, 2]))


def test_reported_errors_cover_about_95_percent_of_the_noise(prepared):
    # ~850 numbers: at a true 95% coverage, 0.90 is > 6 standard errors (0.75%) below
    assert 0.90 <= _coverage(prepared, SeededLaplace(11)) <= 0.99


def test_control_noise_twice_the_reported_scale_is_caught(prepared):
    class Doubled(SeededLaplace):
        def add_laplace(self, values, scale):
            return super().add_laplace(values, 2 * scale)

    assert _coverage(prepared, Doubled(11)) < 0.90


def test_builtin_analysis_in_process_with_opendp(default_frames):
    spec = builtin_spec()
    out = run_analysis_in_process(spec, default_frames)
    assert out["noise"] == {"retailer": "opendp", "ecommerce": "opendp"}
    assert set(out["queries"]) == {q.name for q in spec.queries}
    assert len(out["queries"]["spend_by_province"]["federated"]) == 10
    assert len(out["rfm"]["federated"]["cells"]) == 125
    assert [r["column"] for r in out["quality"]["federated"]] == list(spec.quality.columns)
    seg = out["segments"]
    assert len(seg["centroids"]) == 4 and set(seg["per_node"]) == {"retailer", "ecommerce"}
    sizes = sum(r["size"]["value"] for r in seg["federated"])
    # every customer in one segment; noise: 24 Laplace(7.5) draws, sd 52, so 300 is > 5 sd
    assert sizes == pytest.approx(23_600, abs=300)
    json.dumps(out)  # plain JSON
