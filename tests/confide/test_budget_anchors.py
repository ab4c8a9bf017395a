"""Preflight refuses a node whose budget ledger was deleted or rewound after the run ledger
anchored it; the run-directory finaliser writes those anchors."""

from __future__ import annotations

import json

import pytest

from confide.config import compose_config, to_container
from confide.job import JobError, preflight_config
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import RunLedger, append_run


@pytest.fixture
def config(tmp_path):
    cfg = to_container(compose_config(["rounds=1"]))
    cfg["run"]["root"] = str(tmp_path / "runs")
    cfg["run"]["ledger"] = str(tmp_path / "run-ledger.jsonl")
    cfg["federation"]["nodes"][0]["ledger"] = str(tmp_path / "retailer-ledger.json")
    return cfg


def test_preflight_refuses_a_deleted_or_rewound_budget_ledger(config, tmp_path):
    name = config["federation"]["nodes"][0]["name"]
    node = BudgetLedger(tmp_path / "retailer-ledger.json", name, 10.0)
    node.reserve("run-1", 2.0, 1e-5)
    older = node.path.read_bytes()
    node.reserve("run-2", 3.0, 1e-5)
    preflight_config(config)  # control: no run ledger yet
    append_run(
        config["run"]["ledger"],
        run_id="run-2",
        config={"seed": 1},
        policy_sha256={name: "0" * 64},
        epsilon={name: 3.0},
        model_path=None,
        outcome="completed",
        budget_ledgers={name: (node.path, node.snapshot())},
    )
    preflight_config(config)  # control: the ledger is as anchored
    node.path.write_bytes(older)
    with pytest.raises(JobError) as info:
        preflight_config(config)
    message = str(info.value)
    assert "rewound" in message and "(rule: ledger continuity)" in message
    assert "\n" not in message
    node.path.unlink()
    with pytest.raises(JobError, match=r"missing.*deleted \(rule: ledger continuity\)"):
        preflight_config(config)


def test_finaliser_anchors_each_node_budget_ledger(tmp_path):
    from confide.rundir import finalise_run

    cfg = to_container(compose_config(["rounds=1"]))
    cfg["federation"]["nodes"][0]["ledger"] = str(tmp_path / "retailer-ledger.json")
    from confide.job import parse_job

    job = parse_job(cfg)
    name = job.nodes[0].name
    node = BudgetLedger(tmp_path / "retailer-ledger.json", name, 10.0)
    node.reserve("r", 2.0, 1e-5)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    finalise_run(
        run_dir,
        job=job,
        run_id="r",
        outcome={"status": "stopped", "reason": "test"},
        history={"rounds": []},
        evaluation=None,
        epsilon={name: 0.0},
        policy_sha256={name: "0" * 64},
        ledger_path=tmp_path / "run-ledger.jsonl",
        write_report=lambda _dir: None,
        ledgers={name: node.snapshot()},
        ledger_key=None,
    )
    (record,) = RunLedger(tmp_path / "run-ledger.jsonl").records()
    anchor = record["budget"][name]
    assert anchor["lifetime_spent"] == 2.0 and anchor["runs"] == 1
    assert json.loads(node.path.read_text())["lifetime_spent"] == 2.0
