"""Where DP-SGD's randomness comes from: the Gaussian noise and the Poisson sampling.

A :class:`NoiseSource` hands the training loop one flat vector of Gaussian noise per step and a
NumPy generator for batch sampling. ``SeededNoise`` is reproducible from the run's seed (what
simulation uses by default, so a research run can be repeated number for number).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

__all__ = ["NoiseSource", "SeededNoise"]


class NoiseSource(Protocol):
    """The randomness one node's DP-SGD draws on for one round."""

    name: str

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` independent N(0, std²) draws as a flat float32 tensor."""
        ...

    def sampling_generator(self) -> np.random.Generator:
        """The generator the Poisson batch sampler draws batch sizes and members from."""
        ...


class SeededNoise:
    """Noise and sampling reproducible from ``seed`` (torch's and NumPy's default generators)."""

    name = "seeded"

    def __init__(self, seed: int) -> None:
        self._torch = torch.Generator().manual_seed(int(seed))
        self._numpy = np.random.default_rng(int(seed))

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` draws from N(0, std²) with torch's seeded generator."""
        out = torch.empty(int(n), dtype=torch.float32)
        if n:
            out.normal_(mean=0.0, std=float(std), generator=self._torch)
        return out

    def sampling_generator(self) -> np.random.Generator:
        """The seeded NumPy generator (one per source, advanced by every draw)."""
        return self._numpy
