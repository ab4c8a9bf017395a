"""Survival baselines on the federation's data and preprocessing: centralised Cox proportional
hazards without DP (:mod:`confide.modeling.survival_cox`), the discrete-time hazard model
centralised with and without the job's DP, and each node alone under its DP settings.

Every baseline is scored on the pooled held-out rows with the same federated metrics (binned
aggregates) as the federation, plus the exact Harrell's C on those rows (risk: the predicted
churn probability by the last horizon, which orders customers as the Cox linear predictor does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from confide.clients.node_data import NodeData
from confide.job import Job
from confide.modeling.survival_cox import CoxModel, fit_cox
from confide.modeling.survival_metrics import (
    harrell_c_exact,
    metrics_from_aggregates,
    survival_aggregates,
)
from confide.modeling.survival_model import survival_curves
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.simulations.baselines import pooled_test, train_alone

__all__ = ["COX_PENALIZER", "SurvivalBaseline", "cox_curves", "run_survival_baselines", "scored"]

#: Ridge on the Cox fit: the one-hot blocks of the encoding are collinear (each sums to one).
COX_PENALIZER = 1e-4


@dataclass(frozen=True)
class SurvivalBaseline:
    """One baseline's metrics on the pooled test rows (and, for local-only, its own rows)."""

    name: str
    pooled: dict[str, Any]
    own: dict[str, Any] | None = None
    epsilon: float = 0.0
    rows: int = 0


def scored(curves: np.ndarray, y: np.ndarray, spec: SurvivalTaskSpec) -> dict[str, Any]:
    """Federated-style metrics of survival ``curves`` on rows ``y`` plus the exact C-index."""
    out = metrics_from_aggregates(survival_aggregates(curves, y[:, 0], y[:, 1], spec), spec)
    last = spec.horizon_index(spec.horizons[-1])
    out["c_index_exact"] = harrell_c_exact(1.0 - curves[:, last], y[:, 0], y[:, 1])
    return out


def cox_curves(model: CoxModel, x: np.ndarray, spec: SurvivalTaskSpec) -> np.ndarray:
    """The Cox model's ``S(t_k | x)`` at the task's interval edges."""
    return model.survival_at(x, np.asarray(spec.intervals))


def run_survival_baselines(job: Job, nodes: list[NodeData]) -> list[SurvivalBaseline]:
    """Cox (no DP), hazard model centralised without and with DP, and each node alone."""
    spec = job.task
    if not isinstance(spec, SurvivalTaskSpec):
        raise TypeError("run_survival_baselines needs a survival task")
    x_test, y_test = pooled_test(nodes)
    x_all = np.concatenate([n.x_train for n in nodes])
    y_all = np.concatenate([n.y_train for n in nodes])
    cox = fit_cox(x_all, y_all[:, 0], y_all[:, 1], penalizer=COX_PENALIZER)
    results = [
        SurvivalBaseline(
            "centralised_cox", scored(cox_curves(cox, x_test, spec), y_test, spec), rows=len(y_all)
        )
    ]
    no_dp = replace(job.dp, enabled=False)
    model, _ = train_alone(job, x_all, y_all, no_dp, seed=job.seed)
    results.append(
        SurvivalBaseline(
            "centralised", scored(survival_curves(model, x_test), y_test, spec), rows=len(y_all)
        )
    )
    if job.dp.enabled:
        model, eps = train_alone(job, x_all, y_all, job.dp, seed=job.seed + 1)
        pooled = scored(survival_curves(model, x_test), y_test, spec)
        results.append(SurvivalBaseline("centralised_dp", pooled, epsilon=eps, rows=len(y_all)))
    for index, node in enumerate(nodes):
        model, eps = train_alone(job, node.x_train, node.y_train, job.dp, seed=job.seed + 2 + index)
        own = scored(survival_curves(model, node.x_test), node.y_test, spec)
        pooled = scored(survival_curves(model, x_test), y_test, spec)
        results.append(SurvivalBaseline(f"local_only:{node.name}", pooled, own, eps, node.n_rows))
    return results
