"""Deployment engine end to end: a TLS SuperLink and SuperNodes as real processes on 127.0.0.1.

Small on purpose (600 rows per node, logistic regression, 1-3 rounds), and still over a minute
each: every ClientApp message starts a fresh ``flwr-clientapp`` process (torch, Opacus and Flower
imported anew). In the default suite: the TLS completion test (it is the deployment claim, and
checks the run directory is finished like a simulation's) and the SuperNode authentication test
(no run; about 20 s). Marked slow (``pytest -m slow``): the multi-round ε/ledger test, the
killed-node test and the SecAgg+ test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flwr.app.message_type import MessageType
from flwr.common.serde import message_from_proto
from flwr.proto.message_pb2 import Message as ProtoMessage

from confide.certs import init_certificates
from confide.config import compose_config, to_container
from confide.deploy import DeployError, DeployResult, start_run, wait_for_run
from confide.modeling.dp_accounting import epsilon_for_history
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import RunLedger
from confide.reports import load_run
from confide.reports.sections.privacy import reported_noise
from confide.wire import SECURE_NOISE_METRIC
from tests.byo_data import write_user_federation
from tests.canary import find_canaries, seed_canaries
from tests.deployment import LocalFederation
from tests.epsilon_checks import assert_epsilon_at_target

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


# dp.noise=secure: what `confide deploy` composes first (deployment refuses seeded noise)
FAST = ["federation=mine", "baselines.enabled=false", "train.local_epochs=1", "dp.noise=secure"]


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
    # runs and the run ledger go beside the organisations' folders (never into the repository)
    run_root = conf.parent.parent / "runs"
    return to_container(compose_config([*FAST, f"run.root={run_root}", *overrides], [conf]))


def _start_nodes(fed: LocalFederation, configs: dict[str, dict]) -> None:
    """Start one SuperNode per organisation at the same time (each is ready at its own
    "SuperNode ID"; one after the other, their start-ups add up)."""
    with ThreadPoolExecutor(len(configs)) as pool:
        for started in [pool.submit(fed.start_supernode, n, c) for n, c in configs.items()]:
            started.result()


def _wait(fed: LocalFederation, started: DeployResult, timeout: float = 400) -> DeployResult:
    """Wait for the run to finish. Until its ``outcome.json`` is written (a file check) the
    SuperLink is asked only every 15 s (a run that fails writes none): each ``flwr ls`` is a
    fresh CLI process, about 1.5 s of CPU taken from the run's own processes on CI's 2 cores."""
    assert fed.certs is not None
    deadline = time.monotonic() + timeout
    ask_at = time.monotonic() + 15
    while not (started.run_dir / "outcome.json").is_file() and time.monotonic() < deadline:
        if time.monotonic() >= ask_at:
            with contextlib.suppress(DeployError):  # raised while the run is not finished
                return wait_for_run(started, fed.address, fed.certs.ca_cert, False, 0)
            ask_at = time.monotonic() + 15
        time.sleep(0.25)
    left = max(deadline - time.monotonic(), 0.0)
    return wait_for_run(started, fed.address, fed.certs.ca_cert, False, left, poll_s=1)


def _run(fed: LocalFederation, config: dict, run_root: Path, timeout: float = 400):
    assert fed.certs is not None
    return _wait(fed, start_run(config, fed.address, fed.certs.ca_cert, False, run_root), timeout)


def _assert_one_round_secure_and_at_target(round_: dict, config: dict, names) -> None:
    """Each node drew secure noise and, after one round of one local epoch (the run's planned
    steps are this round's), reports the accountant's epsilon at the run's target."""
    for name in names:
        trained = round_["train"][name]
        assert trained[SECURE_NOISE_METRIC] == 1.0
        assert_epsilon_at_target(
            trained["epsilon"],
            target=config["dp"]["epsilon"],
            delta=config["dp"]["delta"],
            sample_rate=1.0 / trained["steps"],
            steps=int(trained["steps"]),
        )


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
    _start_nodes(
        federation, {n: _node_config(root, n, **{"audit-dir": a}) for n, a in audits.items()}
    )
    started = time.monotonic()
    config = _config(conf, ["rounds=1"])
    done = _run(federation, config, tmp_path / "runs")
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
    # every node drew its DP noise from the secure source (its default under a SuperNode) and
    # said so; the report lists it per node (tests/clients/test_node_noise.py: the controls)
    assert reported_noise(rounds) == {"shop_a": "secure", "shop_b": "secure"}
    _assert_one_round_secure_and_at_target(rounds[0], config, ("shop_a", "shop_b"))
    assert (done.run_dir / "model.pt").is_file()
    ledger = BudgetLedger(root / "shop_a" / "ledger.json", "shop_a", 10.0)
    assert ledger.spent() > 0
    # what left each node (every reply, serialized), the run outputs and every log
    sent = list(_messages(audits["shop_a"]))
    assert {m.metadata.message_type for m in sent} == {MessageType.TRAIN, MessageType.EVALUATE}
    # Flower's home folders, less the installed app bundles: those hold what the coordinator
    # shipped (pyproject.toml + README.md, whose prose says "canary"), not what a node sent
    flwr_home = [
        p
        for p in (federation.root / "flwr-home").rglob("*")
        if p.is_file() and "apps" not in p.relative_to(federation.root / "flwr-home").parts
    ]
    hits = find_canaries([*audits.values(), done.run_dir, federation.root / "logs", *flwr_home])
    assert hits == []
    # the run directory is finished like a simulation's: metrics, curves, report, ledger record
    metrics = json.loads((done.run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["engine"] == "deployment" and metrics["run_id"] == done.run_id
    assert metrics["nodes"]["shop_a"]["epsilon"] == rounds[0]["train"]["shop_a"]["epsilon"]
    assert metrics["global"] == rounds[0]["global"]
    assert "baselines" not in metrics
    curves = json.loads((done.run_dir / "curves.json").read_text(encoding="utf-8"))
    pooled = curves["pooled_test"]["global"]
    assert sum(pooled["pos"]) + sum(pooled["neg"]) == sum(
        rounds[0]["evaluate"][n]["num-examples"] for n in ("shop_a", "shop_b")
    )
    report = (done.run_dir / "report.html").read_text(encoding="utf-8")
    assert len(report) > 1000 and "Noise source each node used" in report
    assert "DP-NOISE-NOT-SECURE" not in report
    assert load_run(done.run_dir).completed is True  # `confide report` reads it
    run_ledger = RunLedger(tmp_path / "runs" / "run-ledger.jsonl")
    verified = run_ledger.verify()
    assert verified.ok is True and verified.count == 1, verified
    (record,) = run_ledger.records()
    assert record["run_id"] == done.run_id and record["outcome"] == "completed"
    assert record["epsilon"] == {n: rounds[0]["train"][n]["epsilon"] for n in ("shop_a", "shop_b")}
    print(f"deployment round trip: {elapsed:.1f} s")


@pytest.mark.slow
def test_multi_round_epsilon_is_the_accountant_over_all_steps_and_the_ledger_spend(
    federation, org, tmp_path
):
    conf, root = org
    federation.start_superlink()
    _start_nodes(federation, {n: _node_config(root, n) for n in ("shop_a", "shop_b")})
    # two rounds: the last round's epsilon is the accountant's over both rounds' steps, not
    # over its own (which is the first round's epsilon, strictly below it)
    config = _config(conf, ["rounds=2"])
    first = _run(federation, config, tmp_path / "runs")
    assert first.outcome is not None and first.outcome["status"] == "completed", first
    rounds = _history(first.run_dir)
    assert [r["round"] for r in rounds] == [1, 2]
    delta, accountant = config["dp"]["delta"], config["dp"]["accountant"]
    spent_first = {}
    for name in ("shop_a", "shop_b"):
        train = [r["train"][name] for r in rounds]
        # local_epochs=1: one round is one epoch, so the sampling rate is 1 / steps per round
        steps = [int(t["steps"]) for t in train]
        assert steps[0] > 0 and len(set(steps)) == 1
        sigma = train[0]["noise_multiplier"]
        assert all(t["noise_multiplier"] == sigma for t in train)  # calibrated once per run
        over_all_steps = epsilon_for_history(
            [(sigma, 1.0 / steps[0], sum(steps))], delta, accountant
        )
        last = train[-1]["epsilon"]
        assert abs(last - over_all_steps) <= 1e-9, (name, last, over_all_steps)
        assert train[0]["epsilon"] < last
        assert_epsilon_at_target(
            last,
            target=config["dp"]["epsilon"],
            delta=delta,
            sample_rate=1.0 / steps[0],
            steps=sum(steps),
        )
        ledger = BudgetLedger(root / name / "ledger.json", name, 10.0)
        (entry,) = [r for r in ledger.runs() if r.run_id == first.run_id]
        assert abs(entry.spent_epsilon - last) <= 1e-9
        assert entry.steps == sum(steps)
        spent_first[name] = ledger.spent()
    # a second run against the same ledgers spends from what is left
    second = _run(federation, _config(conf, ["rounds=1"]), tmp_path / "runs")
    assert second.outcome is not None and second.outcome["status"] == "completed", second
    again = _history(second.run_dir)
    for name in ("shop_a", "shop_b"):
        ledger = BudgetLedger(root / name / "ledger.json", name, 10.0)
        (entry,) = [r for r in ledger.runs() if r.run_id == second.run_id]
        assert abs(entry.spent_epsilon - again[0]["train"][name]["epsilon"]) <= 1e-9
        assert ledger.spent(excluding_run=second.run_id) == pytest.approx(
            spent_first[name], abs=1e-12
        )
        assert ledger.spent() == pytest.approx(spent_first[name] + entry.charge, abs=1e-12)
        # its cap is what the lifetime budget had left after the first run (or its reservation)
        assert ledger.cap(second.run_id) == pytest.approx(min(3.0, 10.0 - spent_first[name]))
    records = RunLedger(tmp_path / "runs" / "run-ledger.jsonl").records()
    assert [r["run_id"] for r in records] == [first.run_id, second.run_id]


def test_supernode_auth_refuses_unregistered_key_and_accepts_registered(tmp_path):
    """With authentication on, only a key registered through the SuperLink's Control API gets
    in: a valid but unregistered key is refused, and so is a node that tries to register
    itself (which an auth-less SuperLink allows: the control case that fails without auth)."""
    certs = init_certificates(tmp_path / "certs", nodes=("shop_a", "shop_b"))
    fed = LocalFederation(tmp_path / "fed", certs=certs, auth=True)
    org = tmp_path / "org"
    try:
        fed.start_superlink()
        registered = fed.flwr("supernode", "register", str(certs.node_keys["shop_a"][1]))
        assert registered.returncode == 0, registered.stdout + registered.stderr
        # shop_b's key is valid but was never registered: the SuperLink refuses it
        with pytest.raises(RuntimeError, match="shop_b did not start"):
            key_b = certs.node_keys["shop_b"][0]
            fed.start_supernode("shop_b", _node_config(org, "shop_b"), auth_key=key_b, timeout=30)
        assert "SuperNode ID" not in fed.log("shop_b")
        assert "Failed to activate SuperNode" in fed.log("shop_b")
        assert "No SuperNode found with the given public key" in fed.log("superlink")
        # shop_c has no registered key and asks to register itself: refused with auth on
        with pytest.raises(RuntimeError, match="shop_c did not start"):
            fed.start_supernode("shop_c", _node_config(org, "shop_c"), timeout=30)
        assert "All SuperNodes must be registered via the CLI" in fed.log("shop_c")
        # the registered key connects
        fed.start_supernode(
            "shop_a", _node_config(org, "shop_a"), auth_key=certs.node_keys["shop_a"][0]
        )
        listed = fed.flwr("supernode", "list", "--format", "json")
        nodes = json.loads(listed.stdout[listed.stdout.find("{") :])["nodes"]
        assert [n["status"] for n in nodes] == ["online"]  # one node: the registered one
    finally:
        fed.stop_all()


@pytest.mark.slow
def test_killed_node_run_completes_ledger_intact_and_node_rejoins(federation, org, tmp_path):
    conf, root = org
    federation.start_superlink()
    _start_nodes(federation, {n: _node_config(root, n) for n in ("shop_a", "shop_b", "shop_c")})
    # 60 s: round 1 cold-starts a flwr-clientapp process per node (torch, Opacus, Flower
    # imports) on 2 cores; round 2 waits this long for the killed node. Two rounds: shop_c
    # trains in the first and is killed before the second, which the others complete.
    config = _config(conf, ["rounds=2", "run.timeout_s=60"])
    assert federation.certs is not None
    started = start_run(
        config, federation.address, federation.certs.ca_cert, False, tmp_path / "runs"
    )
    history = started.run_dir / "history.json"
    deadline = time.monotonic() + 300
    while not (history.is_file() and _history(started.run_dir)):
        assert time.monotonic() < deadline, "round 1 never finished"
        time.sleep(0.25)  # shop_c must die before its round-2 reply (a cold start: seconds)
    federation.stop("shop_c")  # killed in the middle of the run, with its whole process tree
    done = _wait(federation, started)
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
    _start_nodes(
        federation, {n: _node_config(root, n, **{"audit-dir": a}) for n, a in audits.items()}
    )
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


@pytest.mark.slow
def test_survival_task_federates_on_the_deployment_engine(federation, org, tmp_path):
    """Issue 15: a survival task runs on SuperLink/SuperNodes over TLS like a binary task: the
    nodes train the hazard head with DP-SGD at the run's target, reply aggregates only, and the
    coordinator's run directory carries the federated C-index and the survival report."""
    conf, root = org
    federation.start_superlink()
    _start_nodes(federation, {n: _node_config(root, n) for n in ("shop_a", "shop_b")})
    config = _config(conf, ["rounds=1", "task=time_to_churn"])
    done = _run(federation, config, tmp_path / "runs")
    assert done.status == "finished:completed", done
    rounds = _history(done.run_dir)
    assert set(rounds[0]["train"]) == {"shop_a", "shop_b"}
    _assert_one_round_secure_and_at_target(rounds[0], config, ("shop_a", "shop_b"))
    c_index = rounds[0]["global"]["c_index"]
    assert 0.5 < c_index <= 1.0  # a trained hazard model ranks churners ahead of stayers
    metrics = json.loads((done.run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["engine"] == "deployment" and metrics["global"]["c_index"] == c_index
    report = (done.run_dir / "report.html").read_text(encoding="utf-8")
    assert "C-index (Harrell), pooled test" in report
