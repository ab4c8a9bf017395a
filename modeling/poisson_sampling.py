"""Exact Poisson subsampling for DP-SGD with O(batch) work per step.

Opacus's ``UniformWithReplacementSampler`` puts every row in a step's batch independently with
probability ``q``: one uniform number per row per step, so an epoch costs rows x steps draws. The
same distribution comes from two cheaper draws: the batch size ``K ~ Binomial(n, q)`` (the number
of successes among ``n`` independent Bernoulli(q) trials), then a uniform subset of ``K`` rows
without replacement (given ``K``, every subset of that size is equally likely, by symmetry of the
independent trials). NumPy's ``Generator.choice(n, k, replace=False, shuffle=False)`` draws that
subset with Floyd's algorithm in O(k) when ``k <= n / 50`` (or ``n <= 10,000``), and with a partial
Fisher-Yates shuffle of ``arange(n)`` otherwise, which is then O(n) = O(50 k). Because the
distribution of each batch is Opacus's, its accountant (sampled Gaussian mechanism with rate q)
applies unchanged; an empty batch is yielded and still counts as a step.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from confide.modeling.errors import ConfideError

__all__ = ["PoissonBatchSampler", "poisson_batch"]


def poisson_batch(n_rows: int, sample_rate: float, rng: np.random.Generator) -> np.ndarray:
    """One Poisson-subsampled batch: the sorted indices of the rows it includes (maybe none)."""
    size = int(rng.binomial(n_rows, sample_rate))
    if size == 0:
        return np.empty(0, dtype=np.int64)
    members = rng.choice(n_rows, size=size, replace=False, shuffle=False)
    members.sort()  # Opacus's order (ascending row index), and contiguous reads
    return members.astype(np.int64, copy=False)


class PoissonBatchSampler:
    """``steps`` Poisson batches of ``n_rows`` rows at rate ``sample_rate`` (one epoch).

    Usable as a DataLoader ``batch_sampler``: each item is an index array, possibly empty.
    """

    def __init__(
        self, n_rows: int, sample_rate: float, steps: int, generator: np.random.Generator
    ) -> None:
        if n_rows <= 0:
            raise ConfideError("Poisson sampler: n_rows must be positive (rule: DP sampling)")
        if not 0.0 < sample_rate <= 1.0:
            raise ConfideError("Poisson sampler: sample_rate must be in (0, 1] (rule: DP sampling)")
        if steps <= 0:
            raise ConfideError("Poisson sampler: steps must be positive (rule: DP sampling)")
        self.n_rows = int(n_rows)
        self.sample_rate = float(sample_rate)
        self.steps = int(steps)
        self.generator = generator

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self.steps):
            yield poisson_batch(self.n_rows, self.sample_rate, self.generator)
