"""DP-SGD settings and privacy accounting, free of any training loop.

Noise is calibrated once per run from the target (epsilon, delta), the node's size, the batch
size and the planned number of steps (rounds x local epochs x batches per epoch). The
accountant's history is kept in :class:`DPState` between rounds, so the epsilon a node reports is
always the one for every step it took in the run, never one round's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from opacus.accountants import create_accountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.utils import get_noise_multiplier

from confide.modeling.errors import ConfideError
from confide.modeling.training_settings import DPSettings, TrainSettings

__all__ = [
    "RDP_ALPHAS",
    "DPSettings",
    "DPState",
    "accountant_kwargs",
    "calibrate",
    "epsilon_for_history",
    "max_steps_within",
    "planned_steps",
    "steps_per_epoch",
]


@dataclass
class DPState:
    """What a node keeps between rounds of one run: the calibrated noise and the accountant."""

    noise_multiplier: float
    sample_rate: float
    planned_steps: int
    history: list[tuple[float, float, int]] = field(default_factory=list)

    @property
    def steps_taken(self) -> int:
        """Optimizer steps taken in the run so far."""
        return sum(step for _, _, step in self.history)

    def epsilon(self, delta: float, accountant: str) -> float:
        """Epsilon of every step taken so far."""
        return epsilon_for_history(self.history, delta, accountant)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (what the node stores in its ledger)."""
        return {
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "planned_steps": self.planned_steps,
            "history_sigma": [float(h[0]) for h in self.history],
            "history_q": [float(h[1]) for h in self.history],
            "history_steps": [int(h[2]) for h in self.history],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DPState:
        """The inverse of :meth:`to_dict`."""
        history = list(
            zip(
                [float(v) for v in raw["history_sigma"]],
                [float(v) for v in raw["history_q"]],
                [int(v) for v in raw["history_steps"]],
                strict=True,
            )
        )
        return cls(
            float(raw["noise_multiplier"]),
            float(raw["sample_rate"]),
            int(raw["planned_steps"]),
            history,
        )


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Batches per epoch; Opacus's Poisson loader uses sample rate 1 / this number."""
    if n_rows <= 0:
        raise ConfideError("a node has no training rows (rule: non-empty training split)")
    return math.ceil(n_rows / batch_size)


def planned_steps(n_rows: int, train: TrainSettings, rounds: int) -> int:
    """Optimizer steps a node plans for the whole run."""
    return rounds * train.local_epochs * steps_per_epoch(n_rows, train.batch_size)


# Opacus's default RDP orders stop at 63; for few steps at moderate noise the optimum lies above
# that and Opacus warns that the bound is loose. A wider grid gives the tight bound instead.
RDP_ALPHAS: list[float] = (
    [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 513, 8))
)


def accountant_kwargs(accountant: str) -> dict[str, Any]:
    """Extra arguments Opacus's accountant ``accountant`` takes (the RDP orders)."""
    return {"alphas": RDP_ALPHAS} if accountant == "rdp" else {}


@functools.lru_cache(maxsize=512)
def _rdp_one_step(noise_multiplier: float, sample_rate: float) -> np.ndarray:
    """RDP of one sampled-Gaussian step at every order of ``RDP_ALPHAS``.

    A node's (sigma, q) is fixed for a run, so the expensive part of its per-round budget check
    and epsilon report is computed once per process instead of twice per round.
    """
    rdp = np.asarray(
        rdp_analysis.compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=RDP_ALPHAS
        ),
        dtype=float,
    )
    rdp.setflags(write=False)
    return rdp


def epsilon_for_history(
    history: list[tuple[float, float, int]], delta: float, accountant: str
) -> float:
    """Epsilon of every step in ``history`` according to Opacus's accountant."""
    if not history:
        return 0.0
    if accountant == "rdp":  # Opacus's RDPAccountant sum, with each (sigma, q)'s RDP cached
        rdp = sum([_rdp_one_step(float(s), float(q)) * int(n) for s, q, n in history])
        eps, _ = rdp_analysis.get_privacy_spent(orders=RDP_ALPHAS, rdp=rdp, delta=delta)
        return float(eps)
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta, **accountant_kwargs(accountant)))


def max_steps_within(
    history: list[tuple[float, float, int]],
    noise_multiplier: float,
    sample_rate: float,
    wanted: int,
    cap: float,
    delta: float,
    accountant: str,
) -> int:
    """The most of ``wanted`` further steps at (sigma, q) that keep the epsilon <= ``cap``.

    Epsilon grows with every step, so this is the step before which training must stop: each
    step is charged against the cap (binary search; one accountant call when all fit).
    """

    def within(k: int) -> bool:
        extra = [(noise_multiplier, sample_rate, k)] if k else []
        return epsilon_for_history([*history, *extra], delta, accountant) <= cap

    if within(wanted):
        return wanted
    lo, hi = 0, wanted  # within(lo) may be false when the history alone is over the cap
    if not within(0):
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if within(mid):
            lo = mid
        else:
            hi = mid
    return lo


def calibrate(dp: DPSettings, n_rows: int, train: TrainSettings, rounds: int) -> DPState:
    """Calibrate the noise multiplier once for the run's planned steps."""
    steps = planned_steps(n_rows, train, rounds)
    sample_rate = 1.0 / steps_per_epoch(n_rows, train.batch_size)
    sigma = _noise_multiplier(dp.epsilon, dp.delta, sample_rate, steps, dp.accountant)
    return DPState(float(sigma), sample_rate, steps)


@functools.lru_cache(maxsize=256)
def _noise_multiplier(
    epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str
) -> float:
    """Opacus's calibration, a pure function of its arguments: nodes whose row counts give the
    same sample rate and steps (most of a large federation) share one search per process."""
    return float(
        get_noise_multiplier(
            target_epsilon=epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
            **accountant_kwargs(accountant),
        )
    )
