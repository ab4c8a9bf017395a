"""A survival run's outputs without the engine: the final evaluation written to the run
directory (calibration, segment curves, Kaplan-Meier cells, each with >= MIN_CELL customers),
`confide score`'s survival columns, and the binned Kaplan-Meier release rule."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from confide.benchmarks.common import base_config
from confide.clients.node_runtime import NodeRuntime
from confide.clients.scoring import score_file
from confide.job import parse_job
from confide.modeling.model_io import save_model
from confide.modeling.survival_metrics import MIN_CELL, km_binned
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.survival_run import survival_evaluation
from confide.wire import Proposal
from tests.survival.test_spec import shipped

TINY = [
    "task=time_to_churn",
    "federation.nodes.0.rows=800",
    "federation.nodes.1.rows=300",
    "baselines.enabled=false",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run directory holding a (briefly fitted, non-private) survival model."""
    root = tmp_path_factory.mktemp("surv-out")
    job = materialize_synthetic_nodes(parse_job(base_config(TINY)), root / "nodes")
    proposal = Proposal("x", 1, 1, job.seed, job.dp, job.train)
    nodes = [
        NodeRuntime(n, job.task, job.model_net, job.test_fraction).checked_data(proposal)[0]
        for n in job.nodes
    ]
    model = job.model_net.build(job.task.input_dim, seed=0, out_dim=job.task.output_dim)
    with torch.no_grad():  # a hazard of about 5% per interval, rising with feature 0
        model.linear.bias.fill_(-3.0)
        model.linear.weight.zero_()
        model.linear.weight[:, 0] = 2.0
    save_model(root / "model.pt", model, shipped(), job.model_net)
    return job, nodes, root


def test_final_evaluation_releases_only_cells_of_min_size(run):
    job, nodes, root = run
    ev = survival_evaluation(job, root, nodes)
    assert 0.0 < ev.global_metrics["c_index"] < 1.0 and "calibration" not in ev.global_metrics
    info = ev.extra["survival"]
    assert info["horizons"] == [3.0, 6.0, 12.0]
    assert all(g["n"] >= MIN_CELL for gs in info["calibration"].values() for g in gs)
    segments = info["segments"]
    assert segments["feature"] == "member_level" and segments["segments"]
    assert all(s["n"] >= MIN_CELL for s in segments["segments"].values())
    cells = info["kaplan_meier"]["cells"]
    assert cells and all(c["events"] + c["censored"] >= MIN_CELL for c in cells)
    assert sum(c["events"] + c["censored"] for c in cells) == ev.global_metrics["n"]
    assert set(ev.nodes) == {"retailer", "ecommerce"} and "baselines" not in ev.extra


def test_km_cells_merge_until_min_size_and_suppress_tiny_sets():
    spec = shipped_spec()
    per_time = np.zeros((37, 2), dtype=int)
    per_time[[1, 2, 3, 10], 1] = [4, 4, 4, 12]
    per_time[[2, 36], 0] = [3, 2]
    cells = km_binned(per_time, spec)
    # bins 0..2 hold 11 leaving (>= 10); 3..10 hold 16; bin 36's 2 are merged into the last
    assert [(c["events"], c["censored"]) for c in cells] == [(8.0, 3.0), (16.0, 2.0)]
    assert [c["end"] for c in cells] == [3.0, 36.0]
    assert cells[0]["survival"] == pytest.approx(1 - 8 / 29)
    assert cells[1]["survival"] == pytest.approx((1 - 8 / 29) * (1 - 16 / 18))
    assert km_binned(per_time * 0 + np.eye(37, 2, dtype=int), spec) == []  # 2 rows: none


def shipped_spec():
    from confide.modeling.tasks import parse_task

    return parse_task(shipped())


def test_score_writes_churn_within_each_horizon_and_median_retention(run, tmp_path):
    job, _, root = run
    node = job.nodes[1]
    out = tmp_path / "scores.csv"
    assert score_file(root, node.data, node.policy, out, node.keys) == 300
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0])[1:] == [
        "churn_within_3", "churn_within_6", "churn_within_12", "median_retention",
    ]  # fmt: skip
    medians = set()
    for row in rows:
        p3, p6, p12 = (float(row[f"churn_within_{h}"]) for h in (3, 6, 12))
        assert 0.0 <= p3 <= p6 <= p12 <= 1.0
        median = row["median_retention"]
        assert median == "beyond 12" if p12 < 0.5 else float(median) <= 12
        medians.add(median)
    assert "beyond 12" in medians and len(medians) > 1  # both kinds of answer occur
