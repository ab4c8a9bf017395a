"""Membership-inference audit: the DP bounds, the attack metrics, Flower-free federated training
and the CLI. The issue's must-show figures are the slow test at the end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from confide.cli import app
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.privacy.budget_ledger import BudgetLedger
from confide.simulations.federation import materialize_synthetic_nodes
from confide.simulations.in_process import plain_fedavg
from confide.simulations.privacy_audit import (
    attack_metrics,
    audit_job,
    dp_auc_bound,
    dp_tpr_bound,
    dp_variant,
    loss_scores,
    train_federated,
)

TINY = [
    "experiment=mia_overfit",
    "federation.source.rows=400",
    "federation.partition.min_rows=50",
    "rounds=2",
    "train.local_epochs=2",
    "model.net.hidden=[16]",
]


def test_dp_bounds_match_their_closed_forms():
    assert dp_tpr_bound(0.01, 0.0, 0.0) == pytest.approx(0.01)
    assert dp_tpr_bound(0.01, 1.0, 1e-5) == pytest.approx(math.e * 0.01 + 1e-5)
    assert dp_tpr_bound(0.9, 1.0, 0.0) == pytest.approx(1 - math.exp(-1) * 0.1)
    assert dp_auc_bound(0.0, 0.0) == pytest.approx(0.5, abs=1e-6)
    for eps in (0.5, 1.0, 3.0):  # pure epsilon-DP: the area is e^eps / (1 + e^eps)
        assert dp_auc_bound(eps, 0.0) == pytest.approx(1 / (1 + math.exp(-eps)), abs=1e-6)
    assert dp_auc_bound(1.0, 1e-5) > dp_auc_bound(1.0, 0.0)


def test_attack_metrics_on_separable_and_identical_scores():
    rng = np.random.default_rng(0)
    perfect = attack_metrics(np.full(100, 2.0), np.zeros(100))
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct_fpr"] == 1.0
    same = attack_metrics(rng.normal(size=5000), rng.normal(size=5000))
    assert abs(same["auc"] - 0.5) < 0.02 and same["tpr_at_1pct_fpr"] < 0.03


def test_loss_scores_do_not_saturate():
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    x = np.array([[40.0], [60.0]], dtype=np.float32)  # sigmoid rounds both to exactly 1.0
    scores = loss_scores(model, x, np.array([1.0, 1.0]))
    assert scores[1] > scores[0]  # still ranked: no ties from saturated probabilities


def test_audit_trains_the_products_model_through_each_nodes_runtime(tmp_path):
    """The audit's target is the model the product trains: the one in-process FedAvg loop over
    every node's runtime (policy, DP-SGD, float32 averaging) and its ledger is charged."""
    config = dp_variant(to_container(compose_config(TINY)), 1.0)
    job = materialize_synthetic_nodes(parse_job(config), tmp_path / "nodes")
    model, eps = train_federated(job)
    plain = plain_fedavg(job, "the-loop", evaluate=False)
    assert set(eps) == {spec.name for spec in job.nodes} and plain.epsilon == eps
    for key, value in model.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, plain.state_dict[key])
    for spec in job.nodes:  # each node's own ledger charged the audit's run, as a run does
        runs = BudgetLedger(spec.default_ledger(), spec.name, 10.0).runs()
        (audit,) = [r for r in runs if r.run_id == "privacy-audit"]
        assert audit.spent_epsilon == eps[spec.name] and 0.9 < audit.spent_epsilon <= 1.0 + 1e-6


def test_audit_reports_the_setting_attacks_and_bound():
    config = to_container(compose_config(TINY))
    plain = audit_job(config, attacks=("loss", "lira"), shadow_models=2).to_dict()
    assert plain["setting"]["dp"] == {"enabled": False} and plain["dp_bound"] is None
    loss, lira = plain["attacks"]
    assert loss["attack"] == "loss" and loss["members"] == loss["nonmembers"] == 200
    assert lira["attack"] == "lira" and 0.0 <= lira["auc"] <= 1.0
    private = audit_job(dp_variant(config, 1.0))
    report = private.to_dict()
    assert report["setting"]["dp"]["enabled"] and report["setting"]["dp"]["epsilon_target"] == 1.0
    spent = report["dp_bound"]["epsilon"]
    assert 0.9 < spent <= 1.0 + 1e-6
    assert report["dp_bound"]["max_auc"] == pytest.approx(1 / (1 + math.exp(-spent)), abs=1e-3)
    assert [a["attack"] for a in report["attacks"]] == ["loss"]


def test_attack_command_writes_audit_json(tmp_path):
    result = CliRunner().invoke(
        app, ["attack", "membership", *TINY, "--out", str(tmp_path / "audit")]
    )
    assert result.exit_code == 0, result.output
    assert "no DP" in result.output and "attack AUC" in result.output
    payload = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert payload["reports"][0]["attacks"][0]["attack"] == "loss"


@pytest.mark.slow
def test_overfit_model_leaks_and_dp_at_epsilon_one_does_not():
    config = to_container(compose_config(["experiment=mia_overfit"]))
    plain = audit_job(config).attacks[0]
    assert plain.auc > 0.6
    private = audit_job(dp_variant(config, 1.0)).attacks[0]
    assert abs(private.auc - 0.5) <= 0.03
