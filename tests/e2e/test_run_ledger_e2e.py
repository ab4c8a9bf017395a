"""A real simulation appends one hash-chained record to the run ledger, whose config hash is the
one the compliance review printed for the same overrides."""

import json
from pathlib import Path

import pytest

from confide.audit import audit
from confide.config import compose_config, to_container
from confide.privacy.run_ledger import RunLedger, file_sha256
from confide.simulations.simulate import simulate
from tests.epsilon_checks import assert_run_epsilon

SMALL = [
    "federation.nodes.0.rows=2400",
    "federation.nodes.1.rows=600",
    "rounds=1",
    "baselines.enabled=false",
]


@pytest.mark.e2e
def test_simulate_appends_a_verified_ledger_record(tmp_path: Path):
    overrides = [f"run.root={tmp_path / 'runs'}", *SMALL]
    result = simulate(to_container(compose_config(overrides)))
    book = RunLedger(tmp_path / "runs" / "run-ledger.jsonl")
    state = book.verify()
    assert state.ok and state.count == 1, state.message
    rec = book.records()[0]
    assert rec["run_id"] == result.run_dir.name and rec["outcome"] == result.status
    assert rec["model_sha256"] == file_sha256(result.run_dir / "model.pt")
    assert rec["config_sha256"] == audit(overrides).config_sha256
    assert set(rec["epsilon"]) == {"retailer", "ecommerce"}
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for node, epsilon in rec["epsilon"].items():  # one round planned: the whole run's target
        rows = metrics["nodes"][node]["train_rows"]
        assert_run_epsilon(
            epsilon,
            target=3.0,
            delta=1e-5,
            train_rows=rows,
            batch_size=256,
            local_epochs=2,
            rounds=1,
        )
    assert rec["epsilon"]["retailer"] == pytest.approx(metrics["nodes"]["retailer"]["epsilon"])
    assert set(rec["policy_sha256"]) == {"retailer", "ecommerce"}
