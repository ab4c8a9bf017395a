"""A survival run's final evaluation for the run directory: the global model on the pooled
held-out splits (and each node's), calibration at each horizon, predicted survival curves by
segment, the Kaplan-Meier curve as binned counts with a minimum cell size, and the survival
baselines (:mod:`confide.simulations.survival_baselines`).

Released curves are statistics of rows, so every segment and Kaplan-Meier cell holds at least
:data:`~confide.modeling.survival_metrics.MIN_CELL` customers (binned counts, not DP; say so in
the report). The report reads only what is written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from confide.clients.node_data import NodeData
from confide.job import Job
from confide.modeling.model_io import load_model
from confide.modeling.survival_metrics import MIN_CELL, km_binned, survival_aggregates
from confide.modeling.survival_model import survival_curves
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.modeling.task_spec import CategoricalFeature
from confide.rundir import Evaluation
from confide.simulations.baselines import pooled_test
from confide.simulations.survival_baselines import run_survival_baselines, scored

__all__ = ["SEGMENT_FEATURE", "segment_curves", "survival_evaluation"]

#: The categorical feature whose values are the report's segments (first categorical otherwise).
SEGMENT_FEATURE = "member_level"


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k != "calibration"}


def segment_curves(curves: np.ndarray, x: np.ndarray, spec: SurvivalTaskSpec) -> dict[str, Any]:
    """Mean predicted survival at every interval edge per segment of :data:`SEGMENT_FEATURE`
    (segments under ``MIN_CELL`` customers are left out)."""
    cats = [f for f in spec.features if isinstance(f, CategoricalFeature)]
    if not cats:
        return {}
    feature = next((f for f in cats if f.name == SEGMENT_FEATURE), cats[0])
    offset = 0
    for f in spec.features:
        if f is feature:
            break
        offset += f.width
    segments = {}
    for i, category in enumerate(feature.categories):
        rows = x[:, offset + i] > 0.5
        if rows.sum() >= MIN_CELL:
            segments[category] = {
                "n": int(rows.sum()),
                "survival": curves[rows].mean(axis=0).tolist(),
            }
    return {"feature": feature.name, "times": list(spec.intervals), "segments": segments}


def survival_evaluation(job: Job, run_dir: Path, nodes: list[NodeData]) -> Evaluation:
    """Score the run's global survival model on the pooled held-out splits, with baselines."""
    spec = job.task
    model, _, _ = load_model(run_dir / "model.pt")
    x_test, y_test = pooled_test(nodes)
    curves = survival_curves(model, x_test)
    pooled = scored(curves, y_test, spec)
    per_time = survival_aggregates(curves, y_test[:, 0], y_test[:, 1], spec)["counts"][0].sum(
        axis=0
    )
    per_node = {
        node.name: {
            "rows": node.n_rows,
            "train_rows": len(node.y_train),
            "test_rows": len(node.y_test),
            "event_rate": float(node.y_train[:, 1].mean()),
            "global_model_on_own_test": _scalars(
                scored(survival_curves(model, node.x_test), node.y_test, spec)
            ),
        }
        for node in nodes
    }
    extra: dict[str, Any] = {
        "survival": {
            "horizons": list(spec.horizons),
            "calibration": pooled["calibration"],
            "segments": segment_curves(curves, x_test, spec),
            "kaplan_meier": {
                "release": f"binned counts, every cell >= {MIN_CELL} customers (not DP)",
                "cells": km_binned(per_time, spec),
            },
        }
    }
    if job.config.get("baselines", {}).get("enabled", True):
        baselines = run_survival_baselines(job, nodes)
        extra["baselines"] = {
            b.name: {
                "pooled": _scalars(b.pooled),
                "own": _scalars(b.own) if b.own else None,
                "epsilon": b.epsilon,
                "rows": b.rows,
            }
            for b in baselines
        }
        cox = extra["baselines"]["centralised_cox"]["pooled"]["c_index"]
        extra["comparison"] = {
            "global_c_index_minus_cox_c_index": pooled["c_index"] - cox,
            "global_c_index_minus_local_only_c_index": {
                b.name.split(":", 1)[1]: pooled["c_index"] - b.pooled["c_index"]
                for b in baselines
                if b.name.startswith("local_only:")
            },
        }
    return Evaluation(_scalars(pooled), per_node, {}, 0, extra)
