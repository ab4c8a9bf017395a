"""One run-directory finaliser: a deployment run's directory is finished like a simulation's.

The deployment coordinator holds no rows and no node ledger; its run directory must still get
metrics.json, curves.json, report.html and a verified run-ledger record, and `confide report`
must read it (a run without baselines). The e2e TLS deployment test checks the same on real
processes; this test pins the finaliser's content exactly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import yaml

from confide.config import compose_config, to_container
from confide.deploy import deployment_job
from confide.deployment_app import finalise_deployment
from confide.job import parse_job
from confide.modeling.metrics import metrics_from_histograms
from confide.privacy.run_ledger import RunLedger
from confide.reports import load_run
from confide.rundir import CURVES_FILE, METRICS_FILE, last_epsilons
from confide.server.recorder import RunRecorder
from confide.server.server_app import DeploymentRun, RunOutcome
from tests.byo_data import write_user_federation


def _hist(seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    return [float(v) for v in rng.integers(0, 5, 200)], [float(v) for v in rng.integers(0, 9, 200)]


def _deployment_run(tmp_path, status: str = "completed") -> DeploymentRun:
    conf = write_user_federation(tmp_path / "org", {"shop_a": 50, "shop_b": 50})
    run_root = tmp_path / "runs"
    overrides = ["federation=mine", "baselines.enabled=false", f"run.root={run_root}"]
    overrides.append("dp.noise=secure")  # deployment refuses seeded noise
    config = deployment_job(to_container(compose_config(overrides, [conf])))
    job = parse_job(config)
    run_dir = run_root / "4242"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(job.config), encoding="utf-8")
    recorder = RunRecorder(run_dir / "history.json")
    eps = {1: {"shop_a": 1.25, "shop_b": 1.5}, 2: {"shop_a": 2.0, "shop_b": 2.75}}
    for rnd in (1, 2):
        record = recorder.round(rnd)
        for node in ("shop_a", "shop_b"):
            record.train[node] = {"epsilon": eps[rnd][node], "steps": 4.0, "train_loss": 0.5}
            record.evaluate[node] = {"num-examples": 10.0, "roc_auc": 0.7}
            record.add_histogram(*_hist(rnd * 10 + len(node)))
        pos, neg = record.histogram
        record.global_metrics = metrics_from_histograms(
            np.array(pos), np.array(neg), loss_sum=5.0, brier_sum=1.0
        )
        recorder.finish_round(rnd)
    outcome = (
        RunOutcome("completed", 2)
        if status == "completed"
        else RunOutcome("stopped", 1, {"shop_b": "refused"}, "too few nodes")
    )
    (run_dir / "outcome.json").write_text(json.dumps(outcome.to_dict()), encoding="utf-8")
    return DeploymentRun(job, "4242", run_dir, run_root, outcome, recorder, datetime.now(UTC))


def test_deployment_run_dir_gets_metrics_curves_report_and_ledger_record(tmp_path):
    run = _deployment_run(tmp_path)
    metrics = finalise_deployment(run)
    on_disk = json.loads((run.run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    assert on_disk == metrics
    assert metrics["engine"] == "deployment"
    assert metrics["nodes"]["shop_a"]["epsilon"] == 2.0
    assert metrics["nodes"]["shop_b"]["epsilon"] == 2.75
    assert metrics["nodes"]["shop_b"]["test_rows"] == 10
    assert metrics["nodes"]["shop_b"]["global_model_on_own_test"] == {"roc_auc": 0.7}
    last = run.recorder.rounds[2]
    assert metrics["global"] == last.global_metrics
    assert "baselines" not in metrics and metrics["outcome"]["status"] == "completed"
    # curves: the last round's pooled histogram of both nodes, exactly
    curves = json.loads((run.run_dir / CURVES_FILE).read_text(encoding="utf-8"))
    expected_pos = [a + b for a, b in zip(_hist(26)[0], _hist(26)[0], strict=True)]
    assert curves["bins"] == 200
    assert curves["pooled_test"]["global"]["pos"] == expected_pos
    # report.html exists and `confide report` reads the run back
    assert (run.run_dir / "report.html").stat().st_size > 1000
    assert load_run(run.run_dir).completed is True
    # the run ledger: one verified record with each node's last reported epsilon
    ledger = RunLedger(run.run_root / "run-ledger.jsonl")
    assert ledger.verify().ok is True
    (record,) = ledger.records()
    assert record["run_id"] == "4242" and record["outcome"] == "completed"
    assert record["epsilon"] == {"shop_a": 2.0, "shop_b": 2.75}
    assert record["policy_sha256"] == {}


def test_stopped_deployment_run_is_recorded_and_reportable(tmp_path):
    run = _deployment_run(tmp_path, status="stopped")
    metrics = finalise_deployment(run)
    assert metrics["outcome"]["status"] == "stopped" and "global" not in metrics
    assert not (run.run_dir / CURVES_FILE).exists()
    assert (run.run_dir / "report.html").is_file()
    (record,) = RunLedger(run.run_root / "run-ledger.jsonl").records()
    assert record["outcome"] == "stopped"


def test_pooled_histograms_of_different_bins_are_refused():
    recorder = RunRecorder.__new__(RunRecorder)
    recorder.rounds = {}
    record = recorder.round(1)
    record.add_histogram([1.0, 2.0], [3.0, 4.0])
    with pytest.raises(ValueError, match="different bin counts"):
        record.add_histogram([1.0], [1.0])
    assert record.histogram == ([1.0, 2.0], [3.0, 4.0])


def test_last_epsilons_take_each_nodes_last_report():
    history = {
        "rounds": [
            {"train": {"a": {"epsilon": 1.0}, "b": {"epsilon": 0.5}}},
            {"train": {"a": {"epsilon": 1.5}}},
        ]
    }
    assert last_epsilons(history) == {"a": 1.5, "b": 0.5}
    assert last_epsilons(history, ["b", "c"]) == {"b": 0.5, "c": 0.0}
