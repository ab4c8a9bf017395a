"""The settings a federation agrees on for local training: DP-SGD and optimisation.

Plain frozen dataclasses with no torch or Opacus import, so the job, the wire protocol and the
CLI can build and check them without loading the ML stack. The DP accounting
(:mod:`confide.modeling.dp_accounting`) and the training loop
(:mod:`confide.modeling.local_training`) use them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NOISE_KINDS", "DPSettings", "TrainSettings"]

NOISE_KINDS = ("seeded", "secure")
"""The values of ``dp.noise``: ``seeded`` (reproducible, simulation) or ``secure`` (an AES-256-CTR
keystream under a fresh random key, see :mod:`confide.modeling.noise`; every node in deployment)."""


@dataclass(frozen=True)
class DPSettings:
    """Sample-level DP-SGD settings; ``enabled=False`` must be chosen explicitly.

    ``noise`` is the proposed noise source (:data:`NOISE_KINDS`); in deployment each node uses
    its own (secure unless its ``--node-config`` says otherwise), whatever is proposed.
    """

    enabled: bool = True
    epsilon: float = 3.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    noise: str = "seeded"
    grad_sample_mode: str = "hooks"


@dataclass(frozen=True)
class TrainSettings:
    """Local optimisation settings shared by the federation."""

    learning_rate: float = 0.5
    batch_size: int = 256
    local_epochs: int = 1
    momentum: float = 0.0
    proximal_mu: float = 0.0
