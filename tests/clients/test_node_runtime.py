"""A node's own policy and budget decide; the server only proposes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from opacus.accountants import RDPAccountant

from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.config import compose_config, to_container
from confide.job import parse_job, resolve_path
from confide.modeling.dp_accounting import RDP_ALPHAS
from confide.modeling.factory import build_model
from confide.privacy.budget_ledger import BudgetLedger
from confide.simulations.federation import materialize_synthetic_nodes
from confide.wire import Proposal
from tests.epsilon_checks import assert_epsilon_at_target


@pytest.fixture
def small_job(tmp_path):
    cfg = to_container(
        compose_config(["federation.nodes.0.rows=900", "federation.nodes.1.rows=500", "rounds=3"])
    )
    return materialize_synthetic_nodes(parse_job(cfg), tmp_path / "nodes")


def runtime(job, index=0, **node_changes):
    node = dataclasses.replace(job.nodes[index], **node_changes)
    return NodeRuntime(node, job.task, job.model_net, job.test_fraction)


def proposal(job, server_round=1, run_id="run-a", **dp_changes):
    dp = dataclasses.replace(job.dp, **dp_changes)
    return Proposal(run_id, server_round, job.rounds, job.seed, dp, job.train)


def weights(job):
    return build_model(
        job.model_name, job.model_net.params, job.task.input_dim, seed=job.seed
    ).state_dict()


def test_epsilon_after_rounds_covers_all_steps_and_is_in_the_ledger(small_job):
    node = runtime(small_job)
    state = None
    reported = []
    for rnd in range(1, small_job.rounds + 1):
        out = node.train(weights(small_job), proposal(small_job, rnd), state)
        state = out.dp_state
        reported.append(out.metrics["epsilon"])
    steps = sum(state["history_steps"])
    assert steps == state["planned_steps"]
    acc = RDPAccountant()
    acc.history = [(state["noise_multiplier"], state["sample_rate"], steps)]
    assert reported[-1] == pytest.approx(acc.get_epsilon(small_job.dp.delta, alphas=RDP_ALPHAS))
    assert reported == sorted(reported) and reported[0] < reported[-1]
    assert_epsilon_at_target(
        reported[-1],
        target=3.0,
        delta=small_job.dp.delta,
        sample_rate=state["sample_rate"],
        steps=steps,
    )
    ledger = BudgetLedger(node.node.default_ledger(), node.node.name, 10.0).snapshot()
    (run,) = ledger["runs"]
    assert run["spent_epsilon"] == pytest.approx(reported[-1]) and run["steps"] == steps
    assert run["reserved_epsilon"] == 3.0


def test_proposal_above_the_node_maximum_is_refused_with_the_rule(small_job):
    with pytest.raises(NodeRefusal, match="DP-EPS-RUN"):
        runtime(small_job, max_epsilon_per_run=1.0).train(
            weights(small_job), proposal(small_job), None
        )
    with pytest.raises(NodeRefusal, match="DP-EPS-RUN"):  # the policy's own limit is 3.0
        runtime(small_job).train(weights(small_job), proposal(small_job, epsilon=4.0), None)


def test_delta_above_policy_and_no_dp_are_refused(small_job):
    with pytest.raises(NodeRefusal, match="DP-DELTA"):
        runtime(small_job).train(weights(small_job), proposal(small_job, delta=1e-3), None)
    with pytest.raises(NodeRefusal, match=r"GS-NO-DP|DP-REQUIRED"):
        runtime(small_job).train(weights(small_job), proposal(small_job, enabled=False), None)


def test_lifetime_budget_is_enforced_before_training(small_job):
    node = runtime(small_job)
    ledger = BudgetLedger(node.node.default_ledger(), node.node.name, 10.0)
    for i in range(3):
        ledger.reserve(f"old-{i}", 3.0, 1e-5)
    before = node.node.default_ledger().read_bytes()
    with pytest.raises(NodeRefusal, match="lifetime"):
        node.train(weights(small_job), proposal(small_job, run_id="new"), None)
    assert node.node.default_ledger().read_bytes() == before


def test_core_sensitive_column_as_a_feature_is_refused(small_job, tmp_path):
    task = to_container(compose_config())["task"]
    task["features"].append({"name": "mobile", "type": "categorical", "categories": ["x"]})
    job = parse_job({**small_job.config, "task": task}).with_nodes(small_job.nodes)
    with pytest.raises(NodeRefusal, match="CS-FEATURE"):
        runtime(job).train(weights(job), proposal(job), None)


def test_policy_that_does_not_provide_a_task_feature_is_refused(small_job, tmp_path):
    policy = yaml.safe_load(Path(small_job.nodes[0].policy).read_text(encoding="utf-8"))
    policy["columns"]["recency_days"]["role"] = "none"
    changed = tmp_path / "policy.yaml"
    changed.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    with pytest.raises(NodeRefusal, match="recency_days"):
        runtime(small_job, policy=changed).train(weights(small_job), proposal(small_job), None)


def test_evaluate_reports_pooled_sums_and_no_rows(small_job):
    node = runtime(small_job, 1)
    metrics = node.evaluate(weights(small_job), proposal(small_job))
    n = int(metrics["num-examples"])
    assert sum(metrics["hist_pos"]) + sum(metrics["hist_neg"]) == n
    assert 0 < metrics["local_roc_auc"] < 1
    assert all(np.isscalar(v) or isinstance(v, list) for v in metrics.values())
    assert max(len(v) for v in metrics.values() if isinstance(v, list)) == 200


def test_shipped_policy_resolves_from_the_package():
    path = resolve_path("pkg://confide.simulations/policies/synthetic_customers.yaml", "test")
    assert path.is_file()
