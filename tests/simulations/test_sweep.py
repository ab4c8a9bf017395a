"""Sweeps: Hydra sweep semantics, orchestration, the summary table and the plot. The full
epsilon sweep (the issue's must-show) is the slow test at the end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import confide.simulations.simulate as simulate_module
from confide.config import ConfigError
from confide.simulations.simulate import SimulationResult
from confide.simulations.sweep import expand_sweep, plan_sweep, run_sweep, summary_rows


def test_axes_form_a_cartesian_product_and_off_means_dp_off():
    fixed, points = expand_sweep(["rounds=2", "dp.epsilon=1,off", "model=logreg,mlp"])
    assert fixed == ["rounds=2"]
    assert [p.axes for p in points] == [
        {"dp.epsilon": "1", "model": "logreg"},
        {"dp.epsilon": "1", "model": "mlp"},
        {"dp.epsilon": "off", "model": "logreg"},
        {"dp.epsilon": "off", "model": "mlp"},
    ]
    assert points[2].overrides == ["rounds=2", "dp=off", "model=logreg"]
    assert points[0].slug.startswith("00-epsilon-1_model-logreg")


def test_config_declared_axes_and_command_line_precedence():
    _, points = plan_sweep(["experiment=privacy_utility"])
    assert [p.axes["dp.epsilon"] for p in points] == ["0.5", "1", "3", "8", "off"]
    _, points = plan_sweep(["experiment=privacy_utility", "dp.epsilon=2,4"])
    assert [p.axes["dp.epsilon"] for p in points] == ["2", "4"]
    _, points = plan_sweep(["experiment=privacy_utility", "dp.epsilon=3"])
    assert len(points) == 1 and points[0].overrides[-1] == "dp.epsilon=3"
    with pytest.raises(ConfigError, match="override syntax"):
        expand_sweep(["dp.epsilon=[1,"])


def _fake_metrics(config):
    dp = config["dp"]
    eps = dp["epsilon"] if dp["enabled"] else None
    auc = 0.80 + (0.0 if eps is None else -0.01 / eps)
    return {
        "dp": {"enabled": dp["enabled"], "epsilon_target": eps},
        "global": {"roc_auc": auc, "pr_auc": 0.6, "log_loss": 0.4},
        "nodes": {"retailer": {"rows": 10, "epsilon": eps or 0.0}},
        "baselines": {
            "centralised": {"pooled": {"roc_auc": 0.81}},
            **({"centralised_dp": {"pooled": {"roc_auc": auc}}} if eps else {}),
            "local_only:retailer": {"pooled": {"roc_auc": auc - 0.01}},
            "local_only:ecommerce": {"pooled": {"roc_auc": auc - 0.05}},
        },
        "reproducibility": {"seed": config["seed"]},
    }


def test_run_sweep_writes_results_table_and_plot(tmp_path, monkeypatch):
    seen = []

    def fake_simulate(config, on_round_end=None, verbose=False):
        seen.append(config)
        if config["model"]["name"] == "mlp" and not config["dp"]["enabled"]:
            from confide.modeling.errors import ConfideError

            raise ConfideError("node 'x' refused (rule: DP-REQUIRED)")
        run_dir = Path(config["run"]["dir"])
        run_dir.mkdir(parents=True)
        return SimulationResult(run_dir, "completed", _fake_metrics(config))

    monkeypatch.setattr(simulate_module, "simulate", fake_simulate)
    out = tmp_path / "sweep"
    result = run_sweep(
        ["federation=default_research", "dp.epsilon=1,3,off", "model=logreg,mlp"], out_dir=out
    )
    assert len(seen) == 6 and all(c["run"]["quiet"] for c in seen)
    dirs = [Path(c["run"]["dir"]) for c in seen]
    assert len(set(dirs)) == 6 and all(d.parent == out / "points" for d in dirs)
    statuses = [p["status"] for p in result.points]
    assert statuses.count("error") == 1 and statuses.count("completed") == 5
    payload = json.loads((out / "results.json").read_text())
    assert payload["axes"] == {"dp.epsilon": ["1", "3", "off"], "model": ["logreg", "mlp"]}
    assert payload["reproducibility"]["seed"] == 42
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert len(rows) == 6 and {r["epsilon"] for r in rows} == {"1", "3", "no DP"}
    assert "local_only:ecommerce" in rows[0]
    table = (out / "summary.md").read_text()
    assert "| federated AUC |" in table.splitlines()[0] and "DP-REQUIRED" in table
    assert (out / "privacy_utility.png").stat().st_size > 10_000


def test_summary_rows_report_the_gap_to_centralised():
    point = {
        "index": 0,
        "label": "dp.epsilon=1",
        "axes": {"dp.epsilon": "1"},
        "status": "completed",
        "dp_enabled": True,
        "epsilon_target": 1.0,
        "epsilon_spent_max": 0.99,
        "global": {"roc_auc": 0.8},
        "baselines": {"centralised": 0.83},
        "wall_s": 1.0,
    }
    (row,) = summary_rows([point])
    assert row["federated_minus_centralised"] == pytest.approx(-0.03)


@pytest.mark.slow
def test_the_epsilon_sweep_gives_its_table_and_plot(tmp_path):
    # The shipped experiment's five points over the default federation, with fewer rounds, one
    # local epoch and the retailer at 4,000 rows instead of 20,000 (synthetic data, every
    # baseline and the report scale with them) so that CI's whole run (default suite + slow
    # tests) stays within budget; the full-size sweep is timed by hand (README, Sweeps).
    result = run_sweep(
        [
            "experiment=privacy_utility",
            "rounds=3",
            "train.local_epochs=1",
            "federation.nodes.0.rows=4000",
            f"run.root={tmp_path}",
        ],
        out_dir=tmp_path / "sweep",
    )
    assert [p["status"] for p in result.points] == ["completed"] * 5
    rows = list(csv.DictReader((tmp_path / "sweep" / "summary.csv").open()))
    assert [r["epsilon"] for r in rows] == ["0.5", "1", "3", "8", "no DP"]
    aucs = [float(r["federated_auc"]) for r in rows]
    assert aucs[-1] > aucs[0]  # privacy costs utility at the strict end
    assert all(float(r["centralised_auc"]) == float(rows[0]["centralised_auc"]) for r in rows)
    assert (tmp_path / "sweep" / "privacy_utility.png").exists()
