"""Discrete-time hazard model: K logits per customer, one per interval of the task's grid.

The body is any registered model (logreg or MLP) built with ``out_dim = K``; logit ``k`` is the
log-odds of churning in interval ``k`` given survival to its start, so
``S(t_k) = prod_{l <= k} (1 - sigmoid(z_l))``.

Loss (:class:`DiscreteHazardLoss`): for a customer whose duration falls in interval ``j``, the
sum of binary cross-entropies over the intervals observed until the event or censoring:
intervals ``0..j-1`` with target 0 (survived), plus interval ``j`` with target 1 for an event.
A customer censored inside interval ``j`` contributes nothing for ``j`` (survival through it is
not observed); one censored exactly at its upper edge survived it (target 0). This is the
negative log-likelihood of the discrete-time hazard model, and it is one term per customer: the
data has one row per customer, so DP-SGD clips one gradient per customer, never per
person-period row.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from confide.modeling.survival_spec import SurvivalTaskSpec

__all__ = [
    "DiscreteHazardLoss",
    "interval_targets",
    "loss_for_task",
    "median_retention",
    "survival_curves",
    "survival_from_logits",
]


def interval_targets(
    duration: torch.Tensor, event: torch.Tensor, upper: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-interval ``(targets, mask)`` of shape ``(rows, K)`` (see the module docstring)."""
    j = torch.searchsorted(upper, duration.contiguous(), right=False).clamp_(max=len(upper) - 1)
    k = torch.arange(len(upper), device=duration.device).unsqueeze(0)
    j = j.unsqueeze(1)
    at_edge = (duration.unsqueeze(1) == upper[j.squeeze(1)].unsqueeze(1)).float()
    observed_here = torch.maximum(event.unsqueeze(1), at_edge)
    mask = (k < j).float() + (k == j).float() * observed_here
    targets = (k == j).float() * event.unsqueeze(1)
    return targets, mask


class DiscreteHazardLoss(nn.Module):
    """Per-customer negative log-likelihood of the discrete-time hazard model.

    ``forward(logits (B, K), y (B, 2))`` with ``y = (duration, event)``; ``reduction`` is
    ``"mean"`` (over customers, as Opacus expects), ``"sum"`` or ``"none"`` (one value per row).
    """

    def __init__(self, upper_edges: tuple[float, ...], reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in {"mean", "sum", "none"}:
            raise ValueError("reduction must be mean, sum or none")
        self.reduction = reduction
        self.register_buffer("upper", torch.tensor(upper_edges, dtype=torch.float32))

    @classmethod
    def for_task(cls, spec: SurvivalTaskSpec, reduction: str = "mean") -> DiscreteHazardLoss:
        """The loss on ``spec``'s interval grid."""
        return cls(spec.intervals, reduction)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        targets, mask = interval_targets(y[:, 0], y[:, 1], self.upper)
        terms = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        per_row = (terms * mask).sum(dim=1)
        if self.reduction == "none":
            return per_row
        return per_row.sum() if self.reduction == "sum" else per_row.mean()


def loss_for_task(task: object) -> DiscreteHazardLoss | None:
    """The training loss a task needs beyond binary cross-entropy (``None`` for binary)."""
    return DiscreteHazardLoss.for_task(task) if isinstance(task, SurvivalTaskSpec) else None


def survival_from_logits(logits: np.ndarray) -> np.ndarray:
    """Survival probabilities at every interval's upper edge, ``(rows, K)``."""
    hazard = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return np.cumprod(1.0 - hazard, axis=1)


@torch.no_grad()
def survival_curves(model: nn.Module, x: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """``S(t_k | x)`` for rows ``x`` at every interval edge of the model's grid."""
    model.eval()
    out = [
        model(torch.from_numpy(x[i : i + batch_size])).reshape(len(x[i : i + batch_size]), -1)
        for i in range(0, len(x), batch_size)
    ]
    logits = torch.cat(out).numpy() if out else np.zeros((0, 1), np.float32)
    return survival_from_logits(logits)


def median_retention(curves: np.ndarray, spec: SurvivalTaskSpec) -> np.ndarray:
    """The first interval edge at which ``S <= 0.5`` and not beyond the last horizon, else NaN
    (the median retention lies beyond the last horizon)."""
    last = spec.horizon_index(spec.horizons[-1])
    within = curves[:, : last + 1] <= 0.5
    first = np.argmax(within, axis=1)
    edges = np.asarray(spec.intervals, dtype=float)
    return np.where(within.any(axis=1), edges[first], np.nan)
