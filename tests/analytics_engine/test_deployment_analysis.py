"""The deployment ServerApp runs an analysis when the shared job selects one (``confide deploy
analysis=NAME``): the same coordinator and finaliser, driven here through an in-process grid of
node handlers (no SuperLink). A training job still goes to the training loop."""

from __future__ import annotations

import json

import pytest
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from confide import deployment_app
from confide.config import compose_config, to_container
from confide.deploy import deployment_job
from confide.job import NodeSpec
from confide.privacy.run_ledger import RunLedger
from confide.server.analysis_app import is_analysis_run

from .conftest import Grid, segments_spec


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _context(job: dict, runs) -> Context:
    run_config = {"confide-job": json.dumps(job), "confide-run-dir": str(runs)}
    return Context(4242, 0, {}, RecordDict(), run_config)


def test_deployment_server_app_runs_and_finalises_an_analysis(node, tmp_path):
    runs = tmp_path / "coordinator" / "runs"
    # as `confide deploy` sends it: the run ledger's path made absolute under the run root
    ledger = f"run.ledger={runs / 'run-ledger.jsonl'}"
    config = to_container(compose_config(["dp=off", ledger]))  # training DP plays no part
    training = deployment_job(config)
    config["analysis"] = segments_spec(iterations=1)
    shared = deployment_job(config)
    assert not is_analysis_run(_context(training, runs))  # control: training stays training
    other = NodeSpec(**{**node.__dict__, "name": "franchise", "ledger": tmp_path / "f.json"})
    context = _context(shared, runs)
    assert is_analysis_run(context)
    deployment_app.deployment_main(Grid({11: node, 12: other}), context)
    run_dir = runs / "4242"
    analysis = json.loads((run_dir / "analysis.json").read_text(encoding="utf-8"))
    assert (analysis["engine"], analysis["status"]) == ("deployment", "completed")
    assert analysis["nodes"] == ["franchise", "retailer"]
    assert json.loads((run_dir / "outcome.json").read_text())["status"] == "completed"
    assert (run_dir / "analysis.html").is_file()
    record = RunLedger(runs / "run-ledger.jsonl").records()[-1]
    assert record["kind"] == "analysis" and record["epsilon"] == {"franchise": 2.0, "retailer": 2.0}
    # the coordinator's directory holds no node path and no node-side file
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    assert str(node.data) not in config_text and str(node.ledger.parent) not in config_text
    assert (node.ledger.parent / "segments" / "retailer.4242.csv").is_file()
