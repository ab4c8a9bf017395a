"""Metric aggregation functions handed to Flower strategies (no weights are touched here)."""

from __future__ import annotations

import numpy as np
from flwr.app import MetricRecord, RecordDict

from confide.modeling.metrics import metrics_from_histograms
from confide.modeling.survival_eval import is_survival_reply, pooled_survival

__all__ = ["aggregate_eval_metrics", "aggregate_train_metrics"]


def _metric_records(records: list[RecordDict]) -> list[MetricRecord]:
    return [next(iter(r.metric_records.values())) for r in records]


def aggregate_train_metrics(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    """Example-weighted training loss, total examples, and the largest epsilon reported."""
    metrics = _metric_records(records)
    weights = np.array([float(m[weighting_key]) for m in metrics])
    losses = np.array([float(m["train_loss"]) for m in metrics])
    return MetricRecord(
        {
            weighting_key: float(weights.sum()),
            "train_loss": float((weights * losses).sum() / weights.sum()),
            "max_epsilon": float(max(float(m["epsilon"]) for m in metrics)),
        }
    )


def aggregate_eval_metrics(records: list[RecordDict], weighting_key: str) -> MetricRecord:
    """Federation-wide ROC-AUC, PR-AUC, KS, log-loss and Brier from pooled node histograms."""
    metrics = _metric_records(records)
    if is_survival_reply(metrics[0]):  # survival: summed binned aggregates (survival_eval)
        pooled = {k: v for k, v in pooled_survival(metrics).items() if k != "calibration"}
        pooled[weighting_key] = float(sum(float(m[weighting_key]) for m in metrics))
        return MetricRecord({k: float(v) for k, v in pooled.items()})
    pos = np.sum([np.asarray(m["hist_pos"], dtype=float) for m in metrics], axis=0)
    neg = np.sum([np.asarray(m["hist_neg"], dtype=float) for m in metrics], axis=0)
    pooled = metrics_from_histograms(
        pos,
        neg,
        loss_sum=float(sum(float(m["loss_sum"]) for m in metrics)),
        brier_sum=float(sum(float(m["brier_sum"]) for m in metrics)),
    )
    pooled[weighting_key] = float(sum(float(m[weighting_key]) for m in metrics))
    return MetricRecord({k: float(v) for k, v in pooled.items()})
