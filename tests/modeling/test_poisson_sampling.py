"""The Poisson sampler draws Opacus's distribution: statistical tests with stated false alarms.

Every test uses a fixed seed, so it is deterministic; the significance level ALPHA = 1e-3 is the
probability that a correct sampler would fail it for a random seed. Each test is run on a
deliberately wrong sampler too (fixed batch size, wrong rate, non-uniform members), which the
same test must reject.
"""

import time

import numpy as np
import pytest
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from scipy import stats

from confide.modeling.errors import ConfideError
from confide.modeling.poisson_sampling import PoissonBatchSampler, poisson_batch

ALPHA = 1e-3


def _size_pvalue(sizes: np.ndarray, n: int, q: float) -> float:
    """Chi-square goodness of fit of batch sizes to Binomial(n, q); bins with expected count < 5
    are pooled into the tails."""
    draws = len(sizes)
    pmf = stats.binom.pmf(np.arange(n + 1), n, q)
    keep = np.flatnonzero(pmf * draws >= 5)
    lo, hi = keep[0], keep[-1]
    expected = np.concatenate([[pmf[: lo + 1].sum()], pmf[lo + 1 : hi], [pmf[hi:].sum()]]) * draws
    counts = np.bincount(np.clip(sizes, lo, hi) - lo, minlength=hi - lo + 1)
    return float(stats.chisquare(counts, expected).pvalue)


def _inclusion_pvalue(batches: list[np.ndarray], n: int, q: float) -> float:
    """Each row's inclusion count over T batches is Binomial(T, q), independently across rows
    under Poisson sampling: the sum of standardised squares is approximately chi-square with n
    degrees of freedom (T q >= 15 in every case here, so the approximation is close)."""
    counts = np.bincount(np.concatenate(batches), minlength=n)
    t = len(batches)
    statistic = float((((counts - t * q) ** 2) / (t * q * (1 - q))).sum())
    return float(stats.chi2.sf(statistic, n))


def _ours(n, q, draws, seed=0):
    rng = np.random.default_rng(seed)
    return [poisson_batch(n, q, rng) for _ in range(draws)]


def _fixed_size(n, q, draws, seed=0):  # control: uniform members, but always round(n q) of them
    rng = np.random.default_rng(seed)
    return [rng.choice(n, round(n * q), replace=False) for _ in range(draws)]


def _wrong_rate(n, q, draws, seed=0):  # control: exact mechanism at 10% more than q
    return _ours(n, q * 1.1, draws, seed)


def _skewed_members(n, q, draws, seed=0):  # control: right sizes, rows weighted 1..1.5
    rng = np.random.default_rng(seed)
    weights = np.linspace(1.0, 1.5, n)
    weights /= weights.sum()
    out = []
    for _ in range(draws):
        k = rng.binomial(n, q)
        out.append(rng.choice(n, k, replace=False, p=weights))
    return out


# (rows, rate, draws): small n uses Floyd's algorithm; 20,000 rows at 5% (k ~ 1,000 > n / 50)
# uses NumPy's partial shuffle branch, so both branches are tested.
SIZE_CASES = [(50, 0.1, 5_000), (20_000, 0.05, 3_000), (20_000, 0.001, 5_000)]
INCLUSION_CASES = [(50, 0.1, 5_000), (20_000, 0.05, 300)]


@pytest.mark.parametrize(("n", "q", "draws"), SIZE_CASES)
def test_batch_sizes_are_binomial(n, q, draws):
    sizes = np.array([len(b) for b in _ours(n, q, draws)])
    assert _size_pvalue(sizes, n, q) > ALPHA
    for control in (_fixed_size, _wrong_rate):
        bad = np.array([len(b) for b in control(n, q, draws)])
        assert _size_pvalue(bad, n, q) < ALPHA, control.__name__


@pytest.mark.parametrize(("n", "q", "draws"), INCLUSION_CASES)
def test_every_row_is_included_with_probability_q(n, q, draws):
    batches = _ours(n, q, draws)
    assert all(len(np.unique(b)) == len(b) for b in batches)  # without replacement
    assert all((np.diff(b) > 0).all() for b in batches if len(b) > 1)  # sorted
    assert _inclusion_pvalue(batches, n, q) > ALPHA
    for control in (_skewed_members, _wrong_rate):
        assert _inclusion_pvalue(control(n, q, draws), n, q) < ALPHA, control.__name__


def test_same_size_distribution_as_opacus_sampler():
    """Two-sample chi-square test (homogeneity) of our batch sizes against Opacus's own
    ``UniformWithReplacementSampler`` (one uniform per row per step) at the same n and q."""
    n, q, steps = 40, 0.125, 8_000
    opacus = UniformWithReplacementSampler(
        num_samples=n, sample_rate=q, generator=torch.Generator().manual_seed(0), steps=steps
    )
    theirs = np.array([len(b) for b in opacus])
    ours = np.array([len(b) for b in _ours(n, q, steps, seed=1)])
    fixed = np.array([len(b) for b in _fixed_size(n, q, steps)])

    def homogeneity(a, b):
        top = max(a.max(), b.max()) + 1
        table = np.stack([np.bincount(a, minlength=top), np.bincount(b, minlength=top)])
        table = table[:, table.sum(0) >= 10]  # drop near-empty size bins
        return stats.chi2_contingency(table).pvalue

    assert homogeneity(ours, theirs) > ALPHA
    assert homogeneity(fixed, theirs) < ALPHA  # control


def test_empty_batches_are_yielded_and_counted():
    n, q, steps = 3, 0.2, 4_000  # P(empty) = 0.8^3 = 0.512
    sampler = PoissonBatchSampler(n, q, steps, np.random.default_rng(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == steps
    empty = sum(len(b) == 0 for b in batches)
    assert stats.binomtest(empty, steps, (1 - q) ** n).pvalue > ALPHA
    assert all(b.dtype == np.int64 for b in batches)


def test_same_generator_state_same_batches():
    a = list(PoissonBatchSampler(1000, 0.05, 30, np.random.default_rng(5)))
    b = list(PoissonBatchSampler(1000, 0.05, 30, np.random.default_rng(5)))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_work_per_step_does_not_grow_with_rows():
    """O(batch): the same expected batch (32 rows) from 1,000 and from 10,000,000 rows costs
    about the same (an O(n) draw, one uniform per row, would be thousands of times slower)."""

    def per_draw(n):
        rng = np.random.default_rng(0)
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(200):
                poisson_batch(n, 32 / n, rng)
            best = min(best, (time.perf_counter() - start) / 200)
        return best

    small, large = per_draw(1_000), per_draw(10_000_000)
    assert large < 10 * small  # measured ~1x; O(n) would be > 1000x


@pytest.mark.parametrize(
    ("n", "q", "steps"), [(0, 0.1, 1), (10, 0.0, 1), (10, 1.5, 1), (10, 0.1, 0)]
)
def test_invalid_arguments_are_refused(n, q, steps):
    with pytest.raises(ConfideError, match=r"\(rule: DP sampling\)"):
        PoissonBatchSampler(n, q, steps, np.random.default_rng(0))
