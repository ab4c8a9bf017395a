"""The simulation's end of a vertical run: outcome.json is on disk before the in-process
baselines run, so a baseline that fails (a CSV changed during the run, memory at scale) does
not leave a run directory without an outcome while the nodes' ledgers are already charged."""

from __future__ import annotations

import json

import pytest

from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.server.vertical_app import VerticalOutcome
from confide.simulations import vertical_run
from tests.vertical_org import write_vertical_org


def test_the_outcome_is_written_before_the_baselines(tmp_path, monkeypatch):
    conf = write_vertical_org(tmp_path / "org", protocol="secure_linear")
    cfg = compose_config(["federation=vbank", "task=vchurn", f"run.root={tmp_path}"], [conf])
    job = parse_job(to_container(cfg))
    calls = []

    def failing_baselines(job):
        calls.append(job)
        raise RuntimeError("a baseline failed")

    monkeypatch.setattr(vertical_run, "vertical_baselines", failing_baselines)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = VerticalOutcome("completed", {}, message="done")
    with pytest.raises(RuntimeError, match="a baseline failed"):
        vertical_run.finish_vertical(job, "r1", run_dir, outcome)
    assert calls  # the baselines ran, and failed
    written = json.loads((run_dir / "outcome.json").read_text(encoding="utf-8"))
    assert written == {"status": "completed", "reasons": {}, "message": "done"}
