"""Every shipped option trains through Flower's simulation engine, not only composes: a tiny
one-round run of FedProx, FedAdam, ``model=mlp``, ``task=propensity``, ``dp=off`` under the
research policy and ``scenario=sampled``."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from flwr.app.message_type import MessageType

import confide.simulations.simulate as simulate_module
from confide.clients.client_app import make_client_app
from confide.config import compose_config, to_container
from confide.simulations.simulate import simulate

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TINY = [
    "federation.nodes.0.rows=500",
    "federation.nodes.1.rows=300",
    "rounds=1",
    "train.local_epochs=1",
    "baselines.enabled=false",
    "run.quiet=true",
]


def _run(tmp_path: Path, overrides: list[str]):
    config = to_container(compose_config([f"run.root={tmp_path / 'runs'}", *overrides]))
    return simulate(config)


def _read(run_dir: Path, name: str):
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def _state_dict(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pt", weights_only=False)["state_dict"]


def _received_config_mod(folder: Path):
    """A ClientApp mod writing the config of every train message the node receives."""

    def mod(msg, ctxt, call_next):
        if msg.metadata.message_type == MessageType.TRAIN:
            config = dict(msg.content["config"])
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{ctxt.node_config['partition-id']}-{uuid.uuid4().hex}.json"
            (folder / name).write_text(json.dumps(config, default=str), encoding="utf-8")
        return call_next(msg, ctxt)

    return mod


def _one_round_completed(result, nodes: set[str]) -> dict:
    assert result.status == "completed"
    (record,) = _read(result.run_dir, "history.json")["rounds"]
    assert record["round"] == 1 and set(record["train"]) == nodes and not record["refused"]
    assert set(record["evaluate"]) == nodes
    assert 0.0 < result.metrics["global"]["roc_auc"] <= 1.0
    return record


@pytest.fixture(scope="module")
def prox_mlp_propensity(tmp_path_factory):
    """One Ray start for three options: FedProx, the MLP and the propensity task."""
    root = tmp_path_factory.mktemp("prox")
    received = root / "received"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            simulate_module,
            "make_client_app",
            lambda resolve: make_client_app(resolve, mods=[_received_config_mod(received)]),
        )
        result = _run(root, [*TINY, "strategy=fedprox", "model=mlp", "task=propensity"])
    return result, received


@pytest.fixture(scope="module")
def adam_no_dp(tmp_path_factory):
    """One Ray start for FedAdam and dp=off under the research policy."""
    root = tmp_path_factory.mktemp("adam")
    return _run(root, [*TINY, "strategy=fedadam", "federation=default_research", "dp=off"])


def test_fedprox_sends_proximal_mu_to_every_node(prox_mlp_propensity):
    result, received = prox_mlp_propensity
    _one_round_completed(result, {"retailer", "ecommerce"})
    configs = [json.loads(p.read_text("utf-8")) for p in sorted(received.glob("*.json"))]
    assert len(configs) == 2  # one train message per node, as the node received it
    assert [c["proximal-mu"] for c in configs] == [0.1, 0.1]
    assert [c["server-round"] for c in configs] == [1, 1]


def test_mlp_model_trains_one_round(prox_mlp_propensity):
    result, _ = prox_mlp_propensity
    _one_round_completed(result, {"retailer", "ecommerce"})
    shapes = [tuple(t.shape) for t in _state_dict(result.run_dir).values()]
    assert len(shapes) == 4 and shapes[0][0] == 32 and shapes[-1] == (1,)  # hidden [32] -> 1


def test_propensity_task_trains_one_round(prox_mlp_propensity):
    result, _ = prox_mlp_propensity
    _one_round_completed(result, {"retailer", "ecommerce"})
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text("utf-8"))
    assert config["task"]["name"] == "propensity"
    assert config["task"]["label"]["name"] == "responded_offer"


def test_fedadam_trains_one_round(adam_no_dp):
    _one_round_completed(adam_no_dp, {"retailer", "ecommerce"})
    log = (adam_no_dp.run_dir / "logs" / "run.log").read_text("utf-8")
    assert "FedOpt settings:" in log and "eta (0.05) | eta_l (0.5)" in log
    assert "beta_1 (0.9) | beta_2 (0.99)" in log


def test_dp_off_runs_under_the_research_policy(adam_no_dp):
    record = _one_round_completed(adam_no_dp, {"retailer", "ecommerce"})
    nodes = adam_no_dp.metrics["nodes"]
    for name, stats in record["train"].items():  # no DP-SGD: no noise, nothing spent
        assert stats["epsilon"] == 0.0 and stats["noise_multiplier"] == 0.0
        assert stats["steps"] == math.ceil(nodes[name]["train_rows"] / 256)  # one plain epoch


def test_sampled_scenario_trains_half_the_nodes_and_evaluates_all(tmp_path):
    overrides = [
        "scenario=sampled",
        "federation.source.rows=1000",
        "federation.partition.min_rows=50",
        *TINY[2:],
    ]
    result = _run(tmp_path, overrides)
    assert result.status == "completed"
    (record,) = _read(result.run_dir, "history.json")["rounds"]
    names = {f"node_{i:02d}" for i in range(10)}
    assert len(record["train"]) == 5 and set(record["train"]) < names
    assert set(record["evaluate"]) == names and not record["refused"]
