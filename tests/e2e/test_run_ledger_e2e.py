"""A real simulation appends one hash-chained record to the run ledger, whose config hash is the
one the compliance review printed for the same overrides."""

import json
from pathlib import Path

import pytest

from confide.audit import audit
from confide.config import compose_config, to_container
from confide.privacy.run_ledger import RunLedger, file_sha256
from confide.simulations.simulate import simulate

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
    assert all(0 < e <= 3.0 for e in rec["epsilon"].values())
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert rec["epsilon"]["retailer"] == pytest.approx(metrics["nodes"]["retailer"]["epsilon"])
    assert set(rec["policy_sha256"]) == {"retailer", "ecommerce"}
