"""`confide analyze` end to end through Flower's simulation engine (QUERY messages): two CSV
nodes of a user's federation, the built-in analysis. The run directory holds analysis.json and
analysis.html and no canary; the run ledger records kind analysis; each node's budget ledger
holds the analysis's charge; each node keeps its segment assignment beside its own ledger."""

from __future__ import annotations

import json

import pytest

from confide.config import compose_config, to_container
from confide.privacy.budget_ledger import BudgetLedger
from confide.privacy.run_ledger import RunLedger
from confide.simulations.analyze import analyze
from confide.wire import analysis_plan
from tests.byo_data import write_user_federation
from tests.canary import CORE_CANARIES, find_canaries, seed_canaries

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_analyze_runs_on_the_simulation_engine(tmp_path):
    conf = write_user_federation(tmp_path / "org", {"shop_a": 1500, "shop_b": 600})
    for shop in ("shop_a", "shop_b"):
        seed_canaries(conf.parent / shop / "customers.csv")
    runs = tmp_path / "runs"
    config = to_container(
        compose_config(
            ["federation=mine", "analysis=customer_profile", f"run.root={runs}", "run.quiet=true"],
            [conf],
        )
    )
    result = analyze(config)
    assert result.status == "completed"
    run_dir = result.run_dir
    assert {p.name for p in run_dir.iterdir()} >= {
        "analysis.json",
        "analysis.html",
        "config.yaml",
        "ledgers",
    }
    analysis = json.loads((run_dir / "analysis.json").read_text(encoding="utf-8"))
    assert analysis["kind"] == "analysis" and analysis["nodes"] == ["shop_a", "shop_b"]
    assert set(analysis["queries"]) == {q["name"] for q in analysis["spec"]["queries"]}
    assert len(analysis["segments"]["federated"]) == analysis["spec"]["segments"]["k"]
    assert analysis["charged"] == {"shop_a": 3.0, "shop_b": 3.0}
    steps = analysis_plan(2.5, [0.1] + [0.2 / 3] * 3 + [0.2])  # customer_profile: segments 0.5
    assert [(s["step"], s["iteration"]) for s in analysis["steps"]] == [
        (s.step, s.iteration) for s in steps
    ]
    # one run-ledger record of kind analysis, charged 3 per node
    record = RunLedger(runs / "run-ledger.jsonl").records()[-1]
    assert record["kind"] == "analysis" and record["epsilon"] == {"shop_a": 3.0, "shop_b": 3.0}
    assert record["model_sha256"] is None and record["outcome"] == "completed"
    for shop, rows in (("shop_a", 1500), ("shop_b", 600)):
        folder = conf.parent / shop
        ledger = BudgetLedger(folder / "ledger.json", shop, 10.0)
        (run,) = ledger.runs()
        assert (run.run_id, run.kind, run.charge, run.steps) == (
            result.run_dir.name,
            "analysis",
            3.0,
            len(steps),
        )
        # the assignment stays on the node, beside its ledger; never in the run directory
        assignment = folder / "segments" / f"{shop}.{run.run_id}.csv"
        assert len(assignment.read_text(encoding="utf-8").splitlines()) == 1 + rows
    assert not list(run_dir.rglob("*segments*.csv"))
    # core-sensitive canaries appear nowhere in the run directory. (The general-sensitive ones
    # are digit strings such as 171717, which a JSON of thousands of 17-digit noisy floats
    # can contain by chance; no general-sensitive value is released unclamped and un-noised.)
    assert _core_hits([run_dir]) == []
    # control: the search finds the seeded core-sensitive values where they are
    assert _core_hits([conf.parent / "shop_a" / "customers.csv"])


def _core_hits(paths) -> list[str]:
    return [h for h in find_canaries(paths) if h.rsplit(": ", 1)[1].split(":")[0] in CORE_CANARIES]
