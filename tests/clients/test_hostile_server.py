"""A hostile or buggy server cannot make a node spend past its own ledger.

The server is played directly against :class:`NodeRuntime` (no Flower): it sends more rounds
than planned, interleaves run ids, drops or forges the carried DP state, and the node restarts
mid-run (a new runtime with empty per-process caches). Every epsilon is checked against Opacus's
accountant over the history the node's ledger holds, and against the reservation and lifetime.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from opacus.accountants import RDPAccountant

from confide.clients import node_runtime
from confide.clients.node_runtime import NodeRefusal, NodeRuntime
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.dp_accounting import RDP_ALPHAS
from confide.privacy.budget_ledger import BudgetLedger
from confide.simulations.federation import materialize_synthetic_nodes
from confide.wire import Proposal

LIFETIME = 4.0


@pytest.fixture
def job(tmp_path):
    cfg = to_container(compose_config(["federation.nodes.0.rows=600", "rounds=3"]))
    built = materialize_synthetic_nodes(parse_job(cfg), tmp_path / "nodes")
    node = built.nodes[0]
    policy = yaml.safe_load(Path(node.policy).read_text(encoding="utf-8"))
    policy["dp"]["lifetime_epsilon"] = LIFETIME  # max_epsilon_per_run stays 3.0
    changed = tmp_path / "policy.yaml"
    changed.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return built.with_nodes([dataclasses.replace(node, policy=changed)])


def fresh_runtime(job) -> NodeRuntime:
    """A node process that just started: no per-process caches."""
    node_runtime._CACHE.clear()
    return NodeRuntime(job.nodes[0], job.task, job.model_net, job.test_fraction)


def proposal(job, server_round, run_id="run-a", epsilon=1.0):
    dp = dataclasses.replace(job.dp, epsilon=epsilon)
    return Proposal(run_id, server_round, job.rounds, job.seed, dp, job.train)


def weights(job):
    return job.model_net.build(job.task.input_dim, seed=job.seed).state_dict()


def ledger_of(job) -> BudgetLedger:
    return BudgetLedger(job.nodes[0].default_ledger(), job.nodes[0].name, LIFETIME)


def entry_of(job, run_id):
    """The run's entry as the node's ledger file holds it."""
    data = json.loads(job.nodes[0].default_ledger().read_text(encoding="utf-8"))
    (entry,) = [r for r in data["runs"] if r["run_id"] == run_id]
    return entry


def lifetime_spent(job) -> float:
    data = json.loads(job.nodes[0].default_ledger().read_text(encoding="utf-8"))
    return sum(max(r["reserved_epsilon"], r["spent_epsilon"]) for r in data["runs"])


def accountant_epsilon(entry, delta) -> float:
    """Opacus's own RDP accountant over the history the node's ledger holds for a run."""
    acc = entry["accountant"]
    history = list(zip(acc["history_sigma"], acc["history_q"], acc["history_steps"], strict=True))
    accountant = RDPAccountant()
    accountant.history = history
    return accountant.get_epsilon(delta=delta, alphas=RDP_ALPHAS)


def spend_earlier_run(job, epsilon=3.0):
    ledger_of(job).reserve("earlier", epsilon, job.dp.delta)


def test_extra_rounds_stop_at_the_reservation_and_the_lifetime(job):
    spend_earlier_run(job)  # 3.0 of the lifetime 4.0 is gone; this run reserves 1.0
    node = fresh_runtime(job)
    reported, refusal, state = [], None, None
    for rnd in range(1, 3 * job.rounds + 1):  # the server sends three times the planned rounds
        try:
            out = node.train(weights(job), proposal(job, rnd), state)
        except NodeRefusal as exc:
            refusal = (rnd, str(exc))
            break
        reported.append(out.metrics["epsilon"])
        state = out.dp_state
    entry = entry_of(job, "run-a")
    assert max(reported) <= 1.0 and entry["spent_epsilon"] <= 1.0  # never past the reservation
    assert lifetime_spent(job) == 3.0 + 1.0 <= LIFETIME  # nor past the lifetime
    assert refusal is not None, "the node kept training past its budget"
    assert refusal[0] > job.rounds  # every planned round ran
    assert "rule: budget per step" in refusal[1] and "exhausted" in refusal[1]
    exact = accountant_epsilon(entry, job.dp.delta)
    assert abs(entry["spent_epsilon"] - exact) < 1e-9
    assert abs(reported[-1] - exact) < 1e-9
    # the cap bit: one more step at the node's noise would have passed the reservation
    acc = entry["accountant"]
    one_more = RDPAccountant()
    one_more.history = [
        *zip(acc["history_sigma"], acc["history_q"], acc["history_steps"], strict=True),
        (acc["noise_multiplier"], acc["history_q"][-1], 1),
    ]
    assert one_more.get_epsilon(delta=job.dp.delta, alphas=RDP_ALPHAS) > 1.0


def test_interleaved_run_ids_continue_their_own_accountants(job):
    node = fresh_runtime(job)
    steps = {"run-a": 0, "run-b": 0}
    refused = []
    for rnd in range(1, 6):  # the server alternates two runs and never sends DP state
        for run in ("run-a", "run-b"):
            try:
                out = node.train(weights(job), proposal(job, rnd, run_id=run, epsilon=1.5), None)
            except NodeRefusal as exc:
                refused.append(str(exc))
                continue
            steps[run] += int(out.metrics["steps"])
    for run in ("run-a", "run-b"):
        entry = entry_of(job, run)
        assert entry["steps"] == steps[run]  # every DP step of every pass is in the ledger
        assert steps[run] >= entry["accountant"]["planned_steps"]  # more than one pass each
        exact = accountant_epsilon(entry, job.dp.delta)
        assert abs(entry["spent_epsilon"] - exact) < 1e-9 and exact <= 1.5
    assert lifetime_spent(job) == 3.0 <= LIFETIME
    assert refused and all("rule: budget per step" in r for r in refused)


def test_restart_mid_run_continues_from_the_node_ledger(job):
    first = fresh_runtime(job).train(weights(job), proposal(job, 1), None)
    after_one = entry_of(job, "run-a")
    # the node restarts: a new process, empty caches, and the server lost the DP state
    second = fresh_runtime(job).train(weights(job), proposal(job, 2), None)
    after_two = entry_of(job, "run-a")
    assert after_two["steps"] == int(first.metrics["steps"] + second.metrics["steps"])
    assert after_two["steps"] == 2 * after_one["steps"]
    sigma = after_one["accountant"]["noise_multiplier"]
    assert after_two["accountant"]["noise_multiplier"] == sigma  # not recalibrated
    exact = accountant_epsilon(after_two, job.dp.delta)
    assert abs(second.metrics["epsilon"] - exact) < 1e-9
    assert after_two["spent_epsilon"] > after_one["spent_epsilon"]


def test_forged_dp_state_from_the_server_is_ignored(job):
    node = fresh_runtime(job)
    out = node.train(weights(job), proposal(job, 1), None)
    forged = dict(out.dp_state, history_sigma=[], history_q=[], history_steps=[])
    forged["noise_multiplier"] = 1000.0  # claims nothing was spent at enormous noise
    second = node.train(weights(job), proposal(job, 2), forged)
    entry = entry_of(job, "run-a")
    assert entry["steps"] == int(out.metrics["steps"] + second.metrics["steps"])
    assert abs(second.metrics["epsilon"] - accountant_epsilon(entry, job.dp.delta)) < 1e-9
    assert second.metrics["epsilon"] > out.metrics["epsilon"]


def test_run_that_spent_without_accountant_state_is_refused(job):
    ledger = ledger_of(job)
    ledger.reserve("run-a", 1.0, job.dp.delta)  # an old-format entry: no accountant state
    ledger.record("run-a", 0.6, steps=12)
    before = ledger.path.read_bytes()
    with pytest.raises(NodeRefusal, match="rule: accountant continuity"):
        fresh_runtime(job).train(weights(job), proposal(job, 2), None)
    assert ledger.path.read_bytes() == before
