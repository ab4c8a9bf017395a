"""A partitioned scenario with simulated dropout runs end to end through the Flower engine."""

from __future__ import annotations

import json

import pytest

from confide.config import compose_config, to_container
from confide.simulations.dropout import drops_out
from confide.simulations.simulate import simulate


@pytest.mark.e2e
def test_dropout_scenario_runs_with_refusals_recorded_and_a_results_file(tmp_path):
    config = to_container(
        compose_config(
            [
                "scenario=dropout",
                "simulation.dropout_rate=0.4",
                "federation.partition.num_nodes=3",
                "federation.source.rows=1500",
                "rounds=2",
                "train.local_epochs=1",
                "baselines.enabled=false",
                f"run.dir={tmp_path / 'run'}",
                f"run.root={tmp_path}",
            ]
        )
    )
    result = simulate(config)
    assert result.status == "completed"
    history = json.loads((result.run_dir / "history.json").read_text())
    for record in history["rounds"]:
        dropped = {
            f"node_{i:02d}"
            for i in range(3)
            if drops_out(42, f"node_{i:02d}", record["round"], 0.4)
        }
        assert set(record["refused"]) == dropped
        assert set(record["train"]) == {f"node_{i:02d}" for i in range(3)} - dropped
        assert all("simulated dropout" in reason for reason in record["refused"].values())
    partition = json.loads((result.run_dir / "nodes" / "partition.json").read_text())
    assert sum(n["rows"] for n in partition["nodes"].values()) == 1500
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["reproducibility"]["seed"] == 42
    assert len(metrics["reproducibility"]["config_sha256"]) == 64
    assert 0.6 < metrics["global"]["roc_auc"] < 1.0
