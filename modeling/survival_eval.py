"""A node's survival evaluation reply and the pooling of replies (both free of Flower types).

The reply holds only aggregates (:func:`~confide.modeling.survival_metrics.survival_aggregates`,
flattened for a metric record) and the node's own scalar metrics; no row-level prediction or
duration leaves the node. :func:`pooled_survival` sums the replies' aggregates and computes the
federation's C-index, time-dependent AUC, Brier and integrated Brier scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from confide.modeling.survival_metrics import (
    MetricGrid,
    _time_grid,
    metrics_from_aggregates,
    survival_aggregates,
)
from confide.modeling.survival_model import DiscreteHazardLoss, survival_curves
from confide.modeling.survival_spec import SurvivalTaskSpec

__all__ = ["SURVIVAL_KEYS", "is_survival_reply", "node_survival_reply", "pooled_survival"]

#: The aggregate arrays of a reply (flattened), and the grid/shape record beside them.
SURVIVAL_KEYS = ("surv_counts", "surv_pred_sum", "surv_brier_s2", "surv_brier_f2")
_SCALARS = ("c_index", "ibs")


def _shapes(n_h: int, n_t: int, n_g: int, n_r: int) -> dict[str, tuple[int, ...]]:
    return {
        "surv_counts": (n_h, n_r, n_t, 2),
        "surv_pred_sum": (n_h, n_r),
        "surv_brier_s2": (n_g, n_t, 2),
        "surv_brier_f2": (n_g, n_t, 2),
    }


def node_survival_reply(
    model: nn.Module, x: np.ndarray, y: np.ndarray, spec: SurvivalTaskSpec
) -> dict[str, Any]:
    """Aggregates and local scalars of ``model`` on a node's held-out rows ``(x, y)``."""
    curves = survival_curves(model, x)
    with torch.no_grad():
        model.eval()
        loss = DiscreteHazardLoss.for_task(spec, "sum")(
            model(torch.from_numpy(x)), torch.from_numpy(y)
        )
    agg = survival_aggregates(curves, y[:, 0], y[:, 1], spec)
    grid = MetricGrid.from_spec(spec)
    local = metrics_from_aggregates(agg, grid)
    reply: dict[str, Any] = {
        "num-examples": float(len(y)),
        "loss_sum": float(loss),
        "surv_grid": grid.to_list(),
        **{k: np.asarray(agg[k.removeprefix("surv_")]).ravel().tolist() for k in SURVIVAL_KEYS},
    }
    for key in (*_SCALARS, *(f"auc@{h:g}" for h in spec.horizons)):
        reply[f"local_{key}"] = float(local[key])
    return reply


def is_survival_reply(reply: Any) -> bool:
    """Whether an evaluation reply carries survival aggregates."""
    return "surv_counts" in reply


def pooled_survival(replies: list[Any]) -> dict[str, Any]:
    """Federated survival metrics from node replies (summed aggregates; same grid required)."""
    grid = MetricGrid.from_list(replies[0]["surv_grid"])
    for reply in replies[1:]:
        if MetricGrid.from_list(reply["surv_grid"]) != grid:
            raise ValueError("survival replies use different grids (rule: survival task spec)")
    n_t = _time_grid(grid)[1]
    n_h, n_g = len(grid.horizons), len(grid.grid)
    n_r = len(replies[0]["surv_pred_sum"]) // n_h
    agg = {}
    for key, shape in _shapes(n_h, n_t, n_g, n_r).items():
        total = np.sum([np.asarray(r[key], dtype=float) for r in replies], axis=0)
        agg[key.removeprefix("surv_")] = total.reshape(shape)
    out = metrics_from_aggregates(agg, grid)
    out["loss"] = float(sum(float(r["loss_sum"]) for r in replies) / max(out["n"], 1))
    return out
