"""The survival task through the one node runtime: train (DP-SGD on the hazard head, ledger),
evaluate (aggregates only), and bad input refused before anything is written or spent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from confide.benchmarks.common import base_config
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.job import parse_job
from confide.modeling.survival_eval import SURVIVAL_KEYS, pooled_survival
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.in_process import plain_fedavg
from confide.wire import Proposal
from tests.epsilon_checks import assert_run_epsilon

TINY = [
    "task=time_to_churn",
    "federation.nodes.0.rows=600",
    "federation.nodes.1.rows=300",
    "rounds=2",
    "train.batch_size=32",  # a small sampling rate keeps Opacus's RDP calibration fast
]


@pytest.fixture
def job(tmp_path):
    return materialize_synthetic_nodes(parse_job(base_config(TINY)), tmp_path / "nodes")


@pytest.mark.slow  # ~15 s, most of it Opacus's RDP calibration at this tiny size
def test_federated_survival_run_spends_the_budget_and_replies_aggregates_only(job):
    result = plain_fedavg(job, "surv-tiny")
    assert result.state_dict["linear.weight"].shape == (14, job.task.input_dim)
    for node in job.nodes:  # the accountant over both rounds, at the run's target
        rt = NodeRuntime(node, job.task, job.model_net, job.test_fraction)
        data, _ = rt.checked_data(Proposal("x", 1, 2, job.seed, job.dp, job.train))
        assert_run_epsilon(
            result.epsilon[node.name],
            target=job.dp.epsilon,
            delta=job.dp.delta,
            train_rows=len(data.y_train),
            batch_size=job.train.batch_size,
            local_epochs=job.train.local_epochs,
            rounds=2,
        )
    proposal = Proposal("surv-tiny", 2, 2, job.seed, job.dp, job.train)
    replies = [
        NodeRuntime(n, job.task, job.model_net, job.test_fraction).evaluate(
            result.state_dict, proposal
        )
        for n in job.nodes
    ]
    for reply in replies:  # counts and sums, no per-row value of any length n_test
        n_test = int(reply["num-examples"])
        assert set(SURVIVAL_KEYS) <= set(reply)
        assert all(len(reply[k]) != n_test for k in SURVIVAL_KEYS)
        assert sum(reply["surv_counts"]) == 3 * n_test  # each row once per horizon
    pooled = pooled_survival(replies)
    scalars = {k: v for k, v in pooled.items() if k != "calibration"}
    assert scalars == {k: v for k, v in result.global_metrics[-1].items() if k != "calibration"}
    assert 0.5 < pooled["c_index"] < 1.0


@pytest.mark.parametrize(
    ("value", "rule"), [("-1", "negative"), ("", "empty"), ("x", "non-numeric"), ("37", "outside")]
)
def test_bad_duration_is_refused_before_anything_is_written_or_spent(job, value, rule):
    node = job.nodes[1]
    frame = pd.read_csv(node.data, dtype=str, keep_default_na=False)
    frame.loc[5, "retention_months"] = value
    frame.to_csv(node.data, index=False)
    ledger = node.default_ledger()
    before = sorted(p.name for p in ledger.parent.iterdir())
    rt = NodeRuntime(node, job.task, job.model_net, job.test_fraction)
    proposal = Proposal("bad-run", 1, 2, job.seed, job.dp, job.train)
    state = {k: v for k, v in plain_model_state(job).items()}
    with pytest.raises(NodeRefusal) as info:
        rt.train(state, proposal)
    message = str(info.value)
    assert "\n" not in message and "'retention_months'" in message and rule in message
    assert not ledger.exists()
    assert sorted(p.name for p in ledger.parent.iterdir()) == before


def plain_model_state(job):
    model = job.model_net.build(job.task.input_dim, seed=0, out_dim=job.task.output_dim)
    return model.state_dict()


def test_control_the_untouched_node_trains_spends_its_epsilon_and_replies_aggregates(job):
    node = job.nodes[1]
    rt = NodeRuntime(node, job.task, job.model_net, job.test_fraction)
    proposal = Proposal("ok-run", 1, 1, job.seed, job.dp, job.train)  # a one-round run
    outcome = rt.train(plain_model_state(job), proposal)
    assert node.default_ledger().exists() and np.isfinite(outcome.metrics["train_loss"])
    data, _ = rt.checked_data(proposal)
    assert data.y_train.shape == (len(data.x_train), 2)  # one row per customer
    assert_run_epsilon(  # every step of the run accounted, the binary tasks' check
        outcome.metrics["epsilon"],
        target=job.dp.epsilon,
        delta=job.dp.delta,
        train_rows=len(data.y_train),
        batch_size=job.train.batch_size,
        local_epochs=job.train.local_epochs,
        rounds=1,
    )
    reply = rt.evaluate(outcome.state_dict, proposal)
    n_test = int(reply["num-examples"])
    assert n_test == len(data.y_test) and sum(reply["surv_counts"]) == 3 * n_test
    assert not any(k.startswith("hist_") for k in reply)
