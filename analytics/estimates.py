"""Estimates from noisy sums and counts, and their expected 95% error.

Every released component is a vector of true values plus independent Laplace noise of a known
scale per node. A federated number is a sum over nodes, so its noise is a sum of Laplace
variables; a derived number (mean, variance, rate, quantile position) is linearised in the
noisy components (the delta method), so its noise is again approximately a linear combination
of independent Laplace variables. :func:`linear_error` returns the 95% quantile of the absolute
value of such a combination, exactly for the combination (:func:`abs_quantile`): for a plain
count or sum this is the true 95% half-width of the noise; for a ratio it is first-order
(accurate when the denominator's noise is small against it, i.e. groups much larger than the
noise scale).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .mechanisms import abs_quantile

__all__ = [
    "linear_error",
    "mean_estimate",
    "quantile_estimate",
    "rate",
    "ratio",
    "variance_estimate",
]


def linear_error(scales: Sequence[float]) -> float:
    """95% half-width of ``Σ L_i`` with ``L_i ~ Laplace(scales[i])`` (coefficients folded into
    the scales as ``|c_i|·b_i``)."""
    return abs_quantile(list(scales), 0.95)


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or None when the noisy denominator is not positive (too little data)."""
    return float(num / den) if den > 0 else None


def rate(num: float, den: float) -> float | None:
    """A proportion ``num / den`` clamped to [0, 1] (post-processing), None as :func:`ratio`."""
    r = ratio(num, den)
    return None if r is None else min(max(r, 0.0), 1.0)


def _est(value: float | None, scales: list[float]) -> tuple[float | None, float | None]:
    if value is None or not np.isfinite(value):
        return None, None
    return float(value), linear_error(scales)


def mean_estimate(
    n: float,
    s: float,
    center: float,
    lo: float,
    hi: float,
    n_scales: list[float],
    s_scales: list[float],
) -> tuple[float | None, float | None]:
    """Mean ``center + S/N`` (clamped to the bounds) and its 95% error:
    ``d mean = dS/N - (S/N²) dN``."""
    r = ratio(s, n)
    if r is None:
        return None, None
    value = min(max(center + r, lo), hi)
    return _est(value, [b / n for b in s_scales] + [abs(s) / n**2 * b for b in n_scales])


def variance_estimate(
    n: float,
    s1: float,
    s2: float,
    half: float,
    n_scales: list[float],
    s1_scales: list[float],
    s2_scales: list[float],
) -> tuple[float | None, float | None]:
    """Variance ``S2/N - (S1/N)²`` (clamped to [0, half²]) and its 95% error:
    ``d var = dS2/N - 2 S1/N² dS1 + (2 S1²/N³ - S2/N²) dN``."""
    if ratio(s1, n) is None:
        return None, None
    value = min(max(s2 / n - (s1 / n) ** 2, 0.0), half * half)
    scales = [b / n for b in s2_scales] + [2 * abs(s1) / n**2 * b for b in s1_scales]
    scales += [abs(2 * s1**2 / n**3 - s2 / n**2) * b for b in n_scales]
    return _est(value, scales)


def _invert(cdf: np.ndarray, counts: np.ndarray, edges: np.ndarray, target: float) -> float:
    target = min(max(target, 0.0), float(cdf[-1]))
    j = int(np.clip(np.searchsorted(cdf, target, side="right") - 1, 0, len(counts) - 1))
    if counts[j] <= 0:
        return float(edges[j])
    frac = min(max((target - cdf[j]) / counts[j], 0.0), 1.0)
    return float(edges[j] + frac * (edges[j + 1] - edges[j]))


def quantile_estimate(
    counts: np.ndarray, edges: Sequence[float], q: float, scales: list[float]
) -> dict[str, float | list[float] | None]:
    """The ``q``-quantile from noisy bin counts (negatives clipped to 0, linear within a bin).

    Error model: the noise moves the rank ``F(x) - q·T`` at the estimate by
    ``Σ_{i<j} (1-q) L_i - Σ_{i>=j} q L_i`` (bin ``j`` holds the estimate; ``scales``: each
    bin's per-node scales); the 95% interval inverts the noisy CDF at ``q·T ± that
    half-width`` and widens by half a bin (position within a bin is interpolated).
    """
    c = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    e = np.asarray(edges, dtype=np.float64)
    total = float(c.sum())
    if total <= 0:
        return {"value": None, "error95": None, "interval95": None}
    cdf = np.concatenate([[0.0], np.cumsum(c)])
    x = _invert(cdf, c, e, q * total)
    j = int(np.clip(np.searchsorted(e, x, side="right") - 1, 0, len(c) - 1))
    rank_scales = [(1 - q) * b for b in scales] * j + [q * b for b in scales] * (len(c) - j)
    hw = linear_error(rank_scales)
    half_bin = float(e[j + 1] - e[j]) / 2
    lo = _invert(cdf, c, e, q * total - hw) - half_bin
    hi = _invert(cdf, c, e, q * total + hw) + half_bin
    lo, hi = max(lo, float(e[0])), min(hi, float(e[-1]))
    return {"value": x, "error95": max(x - lo, hi - x), "interval95": [lo, hi]}
