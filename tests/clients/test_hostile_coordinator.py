"""A hostile coordinator cannot run code on a node through the job it sends.

The job is delivered exactly as in deployment: JSON in the run config key ``confide-job``, read
by the ClientApp's train handler (``runtime_from_deployment``). A ``_target_`` anywhere in it is
refused before the node touches its budget ledger, and the refusal is the node's reply."""

from __future__ import annotations

import copy
import json

import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.supercore.task_identity import TaskIdentity

from confide.clients import client_app
from confide.code_identity import identity_run_config
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.modeling.models import LogisticRegression
from confide.simulations.federation import materialize_synthetic_nodes

NODE_ID = 7
JOB_IS_DATA = "a node builds models from its registry by name only (rule: job is data)"


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attr, value)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """The shared job (as the coordinator sends it) and one node's local files."""
    root = tmp_path_factory.mktemp("hostile")
    cfg = to_container(compose_config(["federation.nodes.0.rows=400", "rounds=1"]))
    job = materialize_synthetic_nodes(parse_job(cfg), root / "nodes")
    return cfg, job


def node_config(job, ledger):
    node = job.nodes[0]
    return {
        "name": node.name,
        "data-path": str(node.data),
        "policy-path": str(node.policy),
        "keys-path": str(node.keys),
        "ledger-path": str(ledger),
    }


def train_message(job) -> Message:
    proposal = client_app.Proposal("run-1", 1, job.rounds, job.seed, job.dp, job.train)
    weights = LogisticRegression(job.task.input_dim)  # the default model (model=logreg)
    content = RecordDict(
        {
            "arrays": ArrayRecord(weights.state_dict()),
            "config": ConfigRecord({**proposal.to_config(), "server-round": 1}),
        }
    )
    return Message(content, dst_node_id=NODE_ID, message_type=MessageType.TRAIN)


def deliver(job, shared: dict, ledger) -> Message:
    """Run the deployment ClientApp's train handler on ``shared`` sent as ``confide-job``."""
    context = Context(
        run_id=1,
        node_id=NODE_ID,
        node_config=node_config(job, ledger),
        state=RecordDict(),
        run_config={"confide-job": json.dumps(shared), **identity_run_config()},
    )
    return client_app.app(train_message(job), context)


def status(reply: Message) -> dict:
    return dict(reply.content.config_records["confide"])


def attack(path) -> dict:
    return {
        "_target_": "builtins.print",
        "_args_": ["x"],
        "file": {"_target_": "builtins.open", "_args_": [str(path), "a"]},
    }


def test_a_crafted_model_runs_nothing_and_is_refused_before_any_reservation(tmp_path, deployment):
    cfg, job = deployment
    victim = tmp_path / "written-by-the-coordinator.txt"
    ledger = tmp_path / "ledger.json"
    shared = copy.deepcopy(cfg)
    shared["model"]["net"] = attack(victim)
    reply = deliver(job, shared, ledger)
    assert not victim.exists()
    assert not ledger.exists()  # no reservation, no ledger write at all
    assert status(reply) == {
        "node": job.nodes[0].name,
        "status": "refused",
        "reason": "run config 'confide-job': field 'model.net._target_' asks the node to "
        f"instantiate code; {JOB_IS_DATA}",
    }
    assert "arrays" not in reply.content.array_records


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (("task", "_target_"), "task._target_"),
        (("model", "_target_"), "model._target_"),
        (("dp", "_target_"), "dp._target_"),
        (("task", "features", 0, "note"), "task.features[0].note._target_"),
        (
            ("strategy", "algorithm", "train_metrics_aggr_fn"),
            "strategy.algorithm.train_metrics_aggr_fn._target_",
        ),
    ],
)
def test_a_target_anywhere_in_the_job_is_refused(tmp_path, deployment, where, field):
    cfg, job = deployment
    victim = tmp_path / "victim.txt"
    shared = copy.deepcopy(cfg)
    section = shared
    for key in where[:-1]:
        section = section[key]
    section[where[-1]] = attack(victim)
    ledger = tmp_path / "ledger.json"
    reply = deliver(job, shared, ledger)
    assert not victim.exists() and not ledger.exists()
    assert status(reply)["status"] == "refused"
    assert status(reply)["reason"] == (
        f"run config 'confide-job': field '{field}' asks the node to instantiate code; "
        f"{JOB_IS_DATA}"
    )


@pytest.mark.parametrize("key", ["_target_", "_args_", "_partial_", "_recursive_", "_convert_"])
@pytest.mark.parametrize("as_text", [True, False], ids=["plain-string", "attack-tree"])
def test_a_strategy_class_path_is_refused_too(tmp_path, deployment, key, as_text):
    """The coordinator names its strategy from its registry: a node no longer accepts even a
    plain-string ``strategy.algorithm._target_`` (it used to, as the coordinator's class)."""
    cfg, job = deployment
    victim = tmp_path / "victim.txt"
    shared = copy.deepcopy(cfg)
    shared["strategy"]["algorithm"][key] = (
        "flwr.serverapp.strategy.FedAvg" if as_text else attack(victim)
    )
    ledger = tmp_path / "ledger.json"
    reply = deliver(job, shared, ledger)
    assert not victim.exists() and not ledger.exists()
    assert status(reply)["status"] == "refused"
    assert status(reply)["reason"] == (
        f"run config 'confide-job': field 'strategy.algorithm.{key}' asks the node to "
        f"instantiate code; {JOB_IS_DATA}"
    )


def test_an_unregistered_model_or_bad_hyper_parameter_is_refused(tmp_path, deployment):
    cfg, job = deployment
    ledger = tmp_path / "ledger.json"
    shared = copy.deepcopy(cfg)
    shared["model"] = {**shared["model"], "name": "confide.modeling.models.MLP"}
    reply = deliver(job, shared, ledger)
    assert status(reply)["status"] == "refused"
    assert status(reply)["reason"] == (
        "the job in the run config is invalid: model.name: not a registered model (registered: "
        "logreg, mlp) (rule: model registry) (rule: job)"
    )
    shared["model"] = {**shared["model"], "name": "mlp", "net": {"hidden": [100000]}}
    reply = deliver(job, shared, ledger)
    assert "model.net.hidden: must be a list of 1 to 4" in status(reply)["reason"]
    assert not ledger.exists()


def test_control_the_same_delivery_of_an_honest_job_trains_and_reserves(tmp_path, deployment):
    """The checks above can fail: an honest job through the same path reaches the ledger."""
    cfg, job = deployment
    ledger = tmp_path / "ledger.json"
    reply = deliver(job, copy.deepcopy(cfg), ledger)
    assert status(reply)["status"] == "ok", status(reply)
    assert ledger.exists()
    runs = json.loads(ledger.read_text())["runs"]
    assert [r["run_id"] for r in runs] == ["run-1"]
    assert runs[0]["reserved_epsilon"] == pytest.approx(job.dp.epsilon)
