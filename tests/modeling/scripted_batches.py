"""A noise source whose Poisson sampler returns scripted batches (for engine-equivalence tests).

The Gaussian draws come from a real ``SeededNoise``; the sampling generator is a stand-in that
answers ``binomial`` with the next scripted batch's size and ``choice`` with its members, so two
engines run on exactly the same batches (including empty ones).
"""

from __future__ import annotations

import numpy as np

from confide.modeling.noise import SeededNoise


class _ScriptedGenerator:
    def __init__(self, batches: list[list[int]]) -> None:
        self._batches = [list(b) for b in batches]
        self._current: list[int] = []

    def binomial(self, n: int, q: float) -> int:
        self._current = self._batches.pop(0)
        return len(self._current)

    def choice(self, n: int, size: int, replace: bool, shuffle: bool) -> np.ndarray:
        assert size == len(self._current) and not replace
        return np.array(self._current, dtype=np.int64)


class ScriptedBatches:
    """``NoiseSource`` with seeded Gaussian noise and the given batches, in order."""

    name = "scripted"

    def __init__(self, batches: list[list[int]], seed: int = 0) -> None:
        self._noise = SeededNoise(seed)
        self._generator = _ScriptedGenerator(batches)

    def gaussian(self, n: int, std: float):
        return self._noise.gaussian(n, std)

    def sampling_generator(self):
        return self._generator
