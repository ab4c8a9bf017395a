"""The node decides where its DP noise comes from, and says which it used.

In deployment (the ClientApp's ``runtime_from_deployment``) a node draws secure noise unless its
own ``--node-config`` says otherwise, whatever the coordinator proposes; in simulation it follows
the proposal (seeded by default, for reproducibility). Either way its train reply reports the
source (``secure_noise``), and the report flags seeded noise on the deployment engine.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from confide.clients import client_app
from confide.clients.node_runtime import NodeRuntime
from confide.code_identity import identity_run_config
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.factory import build_model
from confide.privacy.review_rules import noise_findings
from confide.reports.sections.privacy import reported_noise
from confide.simulations.federation import materialize_synthetic_nodes
from confide.wire import SECURE_NOISE_METRIC, Proposal, ProposalError
from tests.clients.test_hostile_coordinator import NODE_ID, node_config, status, train_message


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attr, value)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A one-round job (seeded noise proposed, the shipped default) and its node's files.

    The GDP accountant calibrates in about 0.1 s where RDP takes 5-10 s at this sampling rate;
    which accountant runs has no bearing on where the noise comes from."""
    root = tmp_path_factory.mktemp("noise")
    overrides = ["federation.nodes.0.rows=400", "rounds=1", "train.local_epochs=1"]
    cfg = to_container(compose_config([*overrides, "dp.accountant=gdp"]))
    assert cfg["dp"]["noise"] == "seeded"
    return cfg, materialize_synthetic_nodes(parse_job(cfg), root / "nodes")


def deliver(job, shared: dict, ledger, **node_extra):
    """The deployment ClientApp's train handler, with the job as the coordinator sends it."""
    context = Context(
        run_id=1,
        node_id=NODE_ID,
        node_config={**node_config(job, ledger), **node_extra},
        state=RecordDict(),
        run_config={"confide-job": json.dumps(shared), **identity_run_config()},
    )
    return client_app.app(train_message(job), context)


def test_a_deployed_node_uses_secure_noise_whatever_the_coordinator_proposes(tmp_path, small):
    cfg, job = small
    reply = deliver(job, copy.deepcopy(cfg), tmp_path / "ledger.json")  # proposes seeded
    assert status(reply)["status"] == "ok", status(reply)
    assert reply.content.metric_records["metrics"][SECURE_NOISE_METRIC] == 1.0


def test_control_a_node_config_can_choose_seeded_and_it_is_reported(tmp_path, small):
    cfg, job = small
    reply = deliver(job, copy.deepcopy(cfg), tmp_path / "ledger.json", **{"dp-noise": "seeded"})
    assert status(reply)["status"] == "ok", status(reply)
    assert reply.content.metric_records["metrics"][SECURE_NOISE_METRIC] == 0.0


def test_an_unknown_node_noise_setting_is_refused_before_the_ledger(tmp_path, small):
    cfg, job = small
    ledger = tmp_path / "ledger.json"
    reply = deliver(job, copy.deepcopy(cfg), ledger, **{"dp-noise": "dev-urandom"})
    assert status(reply) == {
        "node": job.nodes[0].name,
        "status": "refused",
        "reason": "SuperNode --node-config 'dp-noise' must be one of seeded, secure "
        "(rule: DP noise source)",
    }
    assert not ledger.exists()


def _train_twice(job, noise: str | None, proposed: str) -> tuple[list[torch.Tensor], list[float]]:
    """The same round trained twice, each on a fresh ledger: the weights and reported source."""
    weights, reported = [], []
    start = build_model(job.model_name, job.model_net.params, job.task.input_dim, seed=0)
    dp = dataclasses.replace(job.dp, noise=proposed)
    for attempt in range(2):
        ledger = job.nodes[0].data.with_name(f"ledger-{noise}-{proposed}-{attempt}.json")
        node = dataclasses.replace(job.nodes[0], ledger=ledger)
        runtime = NodeRuntime(node, job.task, job.model_net, job.test_fraction, noise=noise)
        proposal = Proposal(f"run-{attempt}", 1, job.rounds, job.seed, dp, job.train)
        out = runtime.train(start.state_dict(), proposal)
        weights.append(torch.cat([p.flatten() for p in out.state_dict.values()]))
        reported.append(out.metrics[SECURE_NOISE_METRIC])
    return weights, reported


def test_the_node_setting_wins_and_none_follows_the_proposal(small):
    _, job = small
    proposals = {
        kind: Proposal("r", 1, 1, 0, dataclasses.replace(job.dp, noise=kind), job.train)
        for kind in ("seeded", "secure")
    }
    node = job.nodes[0]
    simulated = NodeRuntime(node, job.task, job.model_net, job.test_fraction)
    assert [simulated.noise_kind(p) for p in proposals.values()] == ["seeded", "secure"]
    deployed = NodeRuntime(node, job.task, job.model_net, job.test_fraction, noise="secure")
    assert [deployed.noise_kind(p) for p in proposals.values()] == ["secure", "secure"]


def test_secure_noise_reaches_training_and_seeded_noise_repeats(small):
    _, job = small
    # control, seeded (the simulation default): the same round twice gives the same weights
    seeded, reported = _train_twice(job, None, "seeded")
    assert reported == [0.0, 0.0] and torch.equal(seeded[0], seeded[1])
    # the node's own secure setting over a seeded proposal: fresh keys, different weights
    secure, reported = _train_twice(job, "secure", "seeded")
    assert reported == [1.0, 1.0] and not torch.equal(secure[0], secure[1])


def test_the_report_flags_a_node_that_reported_seeded_noise_in_deployment():
    rounds = [
        {"round": 1, "train": {"a": {SECURE_NOISE_METRIC: 1.0}, "b": {SECURE_NOISE_METRIC: 1.0}}},
        {"round": 2, "train": {"a": {SECURE_NOISE_METRIC: 1.0}, "b": {SECURE_NOISE_METRIC: 0.0}}},
    ]
    reported = reported_noise(rounds)
    assert reported == {"a": "secure", "b": "seeded"}  # each node's last reply counts
    errors = [f for f in noise_findings("tls", reported) if f.severity == "ERROR"]
    assert [(f.rule_id, f.node) for f in errors] == [("DP-NOISE-NOT-SECURE", "b")]
    # control: the same replies in simulation are recorded, not flagged
    assert [f.severity for f in noise_findings("simulation", reported)] == ["INFO", "INFO"]


def test_the_proposal_carries_dp_noise_and_refuses_an_unknown_one(small):
    _, job = small
    sent = Proposal("r", 1, 1, 0, dataclasses.replace(job.dp, noise="secure"), job.train)
    config = {**sent.to_config(), "server-round": 1}
    assert config["dp-noise"] == "secure" and Proposal.from_config(config) == sent
    with pytest.raises(ProposalError, match=r"\(dp-noise must be one of seeded, secure\)") as err:
        Proposal.from_config({**config, "dp-noise": "xorshift"})
    assert "xorshift" not in str(err.value)
