"""Deployment engine end to end: a TLS SuperLink and SuperNodes as real processes on 127.0.0.1.

Small on purpose (600 rows per node, logistic regression, 1-3 rounds), and still over a minute
each: every ClientApp message starts a fresh ``flwr-clientapp`` process (torch, Opacus and Flower
imported anew). The TLS completion test runs in the default suite (it is the deployment claim);
the killed-node and SecAgg+ tests are marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pytest
from flwr.app.message_type import MessageType
from flwr.common.serde import message_from_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

from confide.config import compose_config, to_container
from confide.deploy import start_run, wait_for_run
from confide.privacy.budget_ledger import BudgetLedger
from tests.byo_data import write_user_federation
from tests.canary import find_canaries, seed_canaries
from tests.deployment import LocalFederation

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


FAST = ["federation=mine", "baselines.enabled=false", "train.local_epochs=1"]


def _node_config(org: Path, name: str, **extra) -> dict:
    folder = org / name
    return {
        "data-path": folder / "customers.csv",
        "policy-path": folder / "policy.yaml",
        "keys-path": folder / "keys.json",
        "ledger-path": folder / "ledger.json",
        **extra,
    }


def _config(conf: Path, overrides: list[str]) -> dict:
    return to_container(compose_config([*FAST, *overrides], [conf]))


def _run(fed: LocalFederation, config: dict, run_root: Path, timeout: float = 400):
    assert fed.certs is not None
    started = start_run(config, fed.address, fed.certs.ca_cert, False, run_root)
    return wait_for_run(started, fed.address, fed.certs.ca_cert, False, timeout, poll_s=2)


def _history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "history.json").read_text(encoding="utf-8"))["rounds"]


def _messages(folder: Path):
    for path in sorted(folder.glob("*.bin")):
        yield message_from_proto(ProtoMessage.FromString(path.read_bytes()))


@pytest.fixture
def federation(tmp_path):
    fed = LocalFederation(tmp_path / "fed")
    try:
        yield fed
    finally:
        fed.stop_all()


@pytest.fixture
def org(tmp_path):
    conf = write_user_federation(tmp_path / "org", {"shop_a": 600, "shop_b": 600, "shop_c": 600})
    return conf, tmp_path / "org"


def test_tls_federation_completes_and_leaks_no_canary(federation, org, tmp_path):
    conf, root = org
    seed_canaries(root / "shop_a" / "customers.csv")
    federation.start_superlink()
    # the SuperLink speaks TLS with a certificate for 127.0.0.1 signed by the trial CA
    ctx = ssl.create_default_context(cafile=str(federation.certs.ca_cert))
    with (
        socket.create_connection(("127.0.0.1", federation.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    audits = {n: tmp_path / "audit" / n for n in ("shop_a", "shop_b")}
    for name in audits:
        federation.start_supernode(name, _node_config(root, name, **{"audit-dir": audits[name]}))
    started = time.monotonic()
    done = _run(federation, _config(conf, ["rounds=1"]), tmp_path / "runs")
    elapsed = time.monotonic() - started
    assert done.status == "finished:completed", done
    assert done.outcome == {
        "status": "completed",
        "rounds_completed": 1,
        "reasons": {},
        "message": "",
    }
    rounds = _history(done.run_dir)
    assert set(rounds[0]["train"]) == {"shop_a", "shop_b"}
    assert 0 < rounds[0]["train"]["shop_a"]["epsilon"] <= 3.0
    assert (done.run_dir / "model.pt").is_file()
    ledger = BudgetLedger(root / "shop_a" / "ledger.json", "shop_a", 10.0)
    assert ledger.spent() > 0
    # what left each node (every reply, serialized), the run outputs and every log
    sent = list(_messages(audits["shop_a"]))
    assert {m.metadata.message_type for m in sent} == {MessageType.TRAIN, MessageType.EVALUATE}
    hits = find_canaries(
        [*audits.values(), done.run_dir, federation.root / "logs", federation.root / "flwr-home"]
    )
    assert hits == []
    print(f"deployment round trip: {elapsed:.1f} s")


@pytest.mark.slow
def test_killed_node_run_completes_ledger_intact_and_node_rejoins(federation, org, tmp_path):
    conf, root = org
    federation.start_superlink()
    for name in ("shop_a", "shop_b", "shop_c"):
        federation.start_supernode(name, _node_config(root, name))
    # 60 s: round 1 cold-starts a flwr-clientapp process per node (torch, Opacus, Flower
    # imports) on 2 cores; later rounds wait this long for the killed node.
    config = _config(conf, ["rounds=3", "run.timeout_s=60"])
    assert federation.certs is not None
    started = start_run(
        config, federation.address, federation.certs.ca_cert, False, tmp_path / "runs"
    )
    history = started.run_dir / "history.json"
    deadline = time.monotonic() + 300
    while not (history.is_file() and _history(started.run_dir)):
        assert time.monotonic() < deadline, "round 1 never finished"
        time.sleep(1)
    federation.stop("shop_c")  # killed in the middle of the run, with its whole process tree
    done = wait_for_run(started, federation.address, federation.certs.ca_cert, False, 400, 2)
    assert done.outcome is not None and done.outcome["status"] == "completed", done
    rounds = _history(done.run_dir)
    assert "shop_c" in rounds[0]["train"]
    assert set(rounds[-1]["train"]) == {"shop_a", "shop_b"}
    # the killed node's ledger is intact: valid JSON, this run reserved and recorded
    snapshot = BudgetLedger(root / "shop_c" / "ledger.json", "shop_c", 10.0).snapshot()
    entry = [r for r in snapshot["runs"] if r["run_id"] == done.run_id]
    assert entry and entry[0]["reserved_epsilon"] == pytest.approx(3.0)
    # restarted, it joins the next run, which needs all three nodes
    federation.start_supernode("shop_c", _node_config(root, "shop_c"))
    again = _run(
        federation,
        _config(
            conf,
            [
                "rounds=1",
                "strategy.algorithm.min_train_nodes=3",
                "strategy.algorithm.min_available_nodes=3",
            ],
        ),
        tmp_path / "runs",
    )
    assert again.outcome is not None and again.outcome["status"] == "completed", again
    assert set(_history(again.run_dir)[0]["train"]) == {"shop_a", "shop_b", "shop_c"}


@pytest.mark.slow
def test_secagg_deployment_sends_only_masked_weights(federation, org, tmp_path):
    conf, root = org
    federation.start_superlink()
    audits = {n: tmp_path / "audit" / n for n in ("shop_a", "shop_b")}
    for name in audits:
        federation.start_supernode(name, _node_config(root, name, **{"audit-dir": audits[name]}))
    done = _run(federation, _config(conf, ["rounds=1", "secure=secagg"]), tmp_path / "runs")
    assert done.outcome is not None and done.outcome["status"] == "completed", done
    rounds = _history(done.run_dir)
    assert set(rounds[0]["train"]) == {"shop_a", "shop_b"}
    assert rounds[0]["global"]["roc_auc"] > 0.6
    for folder in audits.values():
        train = [m for m in _messages(folder) if m.metadata.message_type == MessageType.TRAIN]
        assert len(train) == 4  # the four SecAgg+ stages
        for msg in train:  # no plaintext weights ever: only the masked vector (stage 2)
            assert all(len(rec) == 0 for rec in msg.content.array_records.values())
        masked = [m for m in train if "masked_params" in m.content["secaggplus_configs"]]
        assert len(masked) == 1
