"""Simulation engine end to end: node-local refusals, SecAgg+, client-level DP, no leakage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from flwr.app.message_type import MessageType
from flwr.common.serde import message_from_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

import confide.simulations.simulate as simulate_module
from confide.clients.audit import make_audit_mod
from confide.clients.client_app import make_client_app
from confide.config import compose_config, to_container
from confide.simulations.simulate import simulate
from tests.byo_data import write_user_federation
from tests.canary import canary_patterns, find_canaries, seed_canaries
from tests.epsilon_checks import assert_run_epsilon

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FAST = ["federation=mine", "baselines.enabled=false", "train.local_epochs=1"]


def _org(root: Path, nodes: dict[str, int], limits: dict[str, float] | None = None) -> Path:
    conf = write_user_federation(root, nodes)
    if limits:  # node-local settings: a stricter epsilon cap on some nodes
        path = conf / "federation" / "mine.yaml"
        fed = yaml.safe_load(path.read_text(encoding="utf-8"))
        for node in fed["nodes"]:
            if node["name"] in limits:
                node["max_epsilon_per_run"] = limits[node["name"]]
        path.write_text(yaml.safe_dump(fed, allow_unicode=True), encoding="utf-8")
    return conf


def _simulate(conf: Path, runs: Path, overrides: list[str]):
    config = to_container(compose_config([*FAST, f"run.root={runs}", *overrides], [conf]))
    return simulate(config)


def _read(run_dir: Path, name: str):
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def test_refusing_node_run_continues_with_the_others(tmp_path):
    conf = _org(tmp_path / "org", {"a": 400, "b": 400, "c": 400}, {"c": 1.0})
    result = _simulate(conf, tmp_path / "runs", ["rounds=1"])
    assert result.status == "completed"
    round1 = _read(result.run_dir, "history.json")["rounds"][0]
    assert set(round1["train"]) == {"a", "b"}
    assert "exceeds the node's maximum 1 per run" in round1["refused"]["c"]
    assert "DP-EPS-RUN" in round1["refused"]["c"]


def test_refusals_below_the_minimum_stop_the_run_with_reasons(tmp_path):
    conf = _org(tmp_path / "org", {"a": 400, "b": 400}, {"b": 1.0})
    result = _simulate(conf, tmp_path / "runs", ["rounds=2"])
    assert result.status == "stopped"
    outcome = _read(result.run_dir, "outcome.json")
    assert outcome["status"] == "stopped" and outcome["rounds_completed"] == 0
    assert "DP-EPS-RUN" in outcome["reasons"]["b"]
    assert "fewer than the minimum of 2" in outcome["message"]
    assert not (result.run_dir / "model.pt").exists()


@pytest.mark.slow
def test_secagg_gives_the_plain_fedavg_model_and_sends_only_masked_weights(tmp_path, monkeypatch):
    conf = _org(tmp_path / "org", {"a": 500, "b": 500})
    plain = _simulate(conf, tmp_path / "plain", ["rounds=2"])
    audit = tmp_path / "audit"
    monkeypatch.setattr(
        simulate_module,
        "make_client_app",
        lambda resolve: make_client_app(resolve, mods=[make_audit_mod(audit)]),
    )
    for ledger in (tmp_path / "org").rglob("ledger.json"):
        ledger.unlink()  # a fresh budget: the second run proposes the same epsilon
    secure = _simulate(conf, tmp_path / "secure", ["rounds=2", "secure=secagg"])
    assert plain.status == secure.status == "completed"
    a = torch.load(plain.run_dir / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(secure.run_dir / "model.pt", weights_only=False)["state_dict"]
    for key in a:  # same seeds, same DP noise: only SecAgg+ quantisation differs
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-3), key
    train = [
        message_from_proto(ProtoMessage.FromString(p.read_bytes()))
        for p in sorted(audit.glob("train-*.bin"))
    ]
    assert len(train) == 2 * 2 * 4  # nodes x rounds x SecAgg+ stages
    for msg in train:
        assert msg.metadata.message_type == MessageType.TRAIN
        assert all(len(rec) == 0 for rec in msg.content.array_records.values())


@pytest.mark.slow
def test_client_level_dp_wrapper_runs_on_top_of_sample_level_dp(tmp_path):
    conf = _org(tmp_path / "org", {"a": 400, "b": 400})
    result = _simulate(conf, tmp_path / "runs", ["rounds=1", "secure=client_dp"])
    assert result.status == "completed"
    round1 = _read(result.run_dir, "history.json")["rounds"][0]
    assert set(round1["train"]) == {"a", "b"}
    rows = _read(result.run_dir, "metrics.json")["nodes"]
    for name, stats in round1["train"].items():  # client-level DP leaves sample-level DP intact
        assert_run_epsilon(
            stats["epsilon"],
            target=3.0,
            delta=1e-5,
            train_rows=rows[name]["train_rows"],
            batch_size=256,
            local_epochs=1,
            rounds=1,
            noise_multiplier=stats["noise_multiplier"],
            steps_taken=int(stats["steps"]),
        )
    assert "central DP noise" in (result.run_dir / "logs" / "run.log").read_text("utf-8")


def test_canaries_never_leave_the_node_in_simulation(tmp_path, monkeypatch, caplog):
    conf = _org(tmp_path / "org", {"a": 500, "b": 500})
    seed_canaries(tmp_path / "org" / "a" / "customers.csv")
    audit = tmp_path / "audit"
    monkeypatch.setattr(
        simulate_module,
        "make_client_app",
        lambda resolve: make_client_app(resolve, mods=[make_audit_mod(audit)]),
    )
    result = _simulate(conf, tmp_path / "runs", ["rounds=1"])
    assert result.status == "completed"
    sent = list(audit.glob("*.bin"))
    assert {p.name.split("-")[0] for p in sent} == {"train", "evaluate"}
    assert len(sent) == 4
    assert find_canaries([audit, result.run_dir]) == []
    # control: the same search finds every canary in the CSV this node trained on
    found = {h.rsplit(": ", 1)[1] for h in find_canaries([tmp_path / "org" / "a"])}
    assert found == {n for n in canary_patterns() if not n.endswith((":f64", ":f32"))}
    assert all(pattern not in caplog.text for pattern in ("CANARY", "123456.789", "9876.54321"))
