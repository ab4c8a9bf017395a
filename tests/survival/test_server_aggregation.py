"""The server's metric aggregation pools survival replies through Flower's records exactly as
the in-process loop does (the record keeps only scalars: no per-row or per-cell value)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import MetricRecord, RecordDict

from confide.modeling.survival_eval import pooled_survival
from confide.modeling.survival_metrics import MetricGrid, survival_aggregates
from confide.server.aggregation import aggregate_eval_metrics
from tests.survival.test_metrics import SPEC, synthetic


def _reply(curves, t, e) -> dict:
    agg = survival_aggregates(curves, t, e, SPEC)
    reply = {f"surv_{k}": np.asarray(v).ravel().tolist() for k, v in agg.items()}
    counts = [int(c) for c in reply["surv_counts"]]
    return reply | {
        "surv_counts": counts,
        "surv_grid": MetricGrid.from_spec(SPEC).to_list(),
        "loss_sum": 1.5 * len(t),
        "num-examples": float(len(t)),
    }


def test_server_pools_survival_replies_like_the_in_process_loop():
    curves, t, e = synthetic(2000, seed=11)
    replies = [_reply(curves[:500], t[:500], e[:500]), _reply(curves[500:], t[500:], e[500:])]
    records = [RecordDict({"metrics": MetricRecord(r)}) for r in replies]
    pooled = aggregate_eval_metrics(records, "num-examples")
    expected = {k: v for k, v in pooled_survival(replies).items() if k != "calibration"}
    assert dict(pooled) == pytest.approx(expected | {"num-examples": 2000.0}, rel=1e-12)
    assert all(isinstance(v, float) for v in pooled.values())
    assert pooled["loss"] == pytest.approx(1.5)


def test_control_a_binary_reply_still_takes_the_histogram_path():
    reply = {
        "hist_pos": [0, 3],
        "hist_neg": [4, 1],
        "loss_sum": 2.0,
        "brier_sum": 1.0,
        "num-examples": 8.0,
    }
    pooled = aggregate_eval_metrics([RecordDict({"metrics": MetricRecord(reply)})], "num-examples")
    assert "roc_auc" in pooled and "c_index" not in pooled
