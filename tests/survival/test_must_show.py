"""Issue 15's must-show on the default synthetic survival federation (retailer 20,000 rows,
e-commerce 3,600 = 15% of rows) with DP-SGD at epsilon 3 per node, through the node runtime's
in-process FedAvg loop: the federated C-index is within 0.02 of the centralised non-private Cox
model, above the local-only model of every node holding under 20% of the rows, and each node's
epsilon is the accountant's over all steps of the run (the binary tasks' check)."""

from __future__ import annotations

import numpy as np
import pytest

from confide.benchmarks.common import base_config, load_nodes
from confide.job import parse_job
from confide.modeling.survival_cox import fit_cox
from confide.modeling.survival_model import survival_curves
from confide.simulations.baselines import pooled_test, train_alone
from confide.simulations.in_process import plain_fedavg
from confide.simulations.survival_baselines import COX_PENALIZER, cox_curves, scored
from tests.epsilon_checks import assert_run_epsilon


@pytest.mark.slow  # ~70 s on two shared cores: five DP rounds on 23,600 customers + baselines
def test_federated_survival_matches_cox_and_beats_small_nodes_alone(tmp_path):
    job = parse_job(base_config(["task=time_to_churn"]))
    assert job.dp.enabled and job.dp.epsilon == 3.0
    job, nodes = load_nodes(job, tmp_path / "nodes")
    spec = job.task
    result = plain_fedavg(job, "survival-must-show")

    x_test, y_test = pooled_test(nodes)
    model = job.model_net.build(spec.input_dim, out_dim=spec.output_dim)
    model.load_state_dict(result.state_dict)
    federated = scored(survival_curves(model, x_test), y_test, spec)
    # The loop's own federated metric (node aggregates) is the row-level one on the same rows.
    assert federated["c_index"] == pytest.approx(result.global_metrics[-1]["c_index"], abs=1e-12)

    x_all = np.concatenate([n.x_train for n in nodes])
    y_all = np.concatenate([n.y_train for n in nodes])
    cox = scored(
        cox_curves(fit_cox(x_all, y_all[:, 0], y_all[:, 1], COX_PENALIZER), x_test, spec),
        y_test,
        spec,
    )
    assert abs(federated["c_index"] - cox["c_index"]) <= 0.02
    assert abs(federated["c_index_exact"] - cox["c_index_exact"]) <= 0.02

    total = sum(n.n_rows for n in nodes)
    small = [n for n in nodes if n.n_rows < 0.2 * total]
    assert [n.name for n in small] == ["ecommerce"]
    for index, node in enumerate(nodes):
        if node not in small:
            continue
        alone, eps = train_alone(job, node.x_train, node.y_train, job.dp, seed=job.seed + 2 + index)
        local = scored(survival_curves(alone, x_test), y_test, spec)
        assert federated["c_index"] > local["c_index"], (federated["c_index"], local["c_index"])
        assert eps <= job.dp.epsilon + 1e-9

    for node in nodes:
        assert_run_epsilon(
            result.epsilon[node.name],
            target=job.dp.epsilon,
            delta=job.dp.delta,
            train_rows=len(node.y_train),
            batch_size=job.train.batch_size,
            local_epochs=job.train.local_epochs,
            rounds=job.rounds,
        )
