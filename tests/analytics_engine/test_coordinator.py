"""The analysis coordinator (server/analysis_app.py) against real node handlers, in process:
a small grid delivers its QUERY messages to the ClientApp the engine runs (no Ray), so the
plan, the combination and the stop on a refusal or a missing reply are checked in seconds."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord
from flwr.supercore.task_identity import TaskIdentity

from confide.analytics.spec import load_analysis_spec
from confide.job import NodeSpec
from confide.privacy.budget_ledger import BudgetLedger
from confide.server.analysis_app import plan_of, run_analysis
from confide.wire import ANALYSIS_KEY, decode_analysis_reply, encode_analysis_reply

from .conftest import Grid, segments_spec


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 1)):
        monkeypatch.setattr(TaskIdentity, attr, value)


@pytest.fixture
def two_nodes(node, tmp_path) -> dict[int, NodeSpec]:
    other = NodeSpec(**{**node.__dict__, "name": "franchise", "ledger": tmp_path / "f.json"})
    return {11: node, 12: other}


def test_the_plan_runs_to_a_combined_analysis(two_nodes):
    raw = segments_spec(iterations=2)
    spec = load_analysis_spec(raw, "test")
    grid = Grid(two_nodes)
    outcome = run_analysis(grid, spec, "run-1", timeout=30.0)
    assert outcome.status == "completed", outcome.message
    steps = plan_of(spec)
    assert len(grid.sent) == 2 * len(steps) and {t for _, t in grid.sent} == {"query"}
    assert outcome.charged == {"franchise": 2.0, "retailer": 2.0}
    analysis = outcome.analysis
    assert set(analysis["queries"]) == {"spend_by_province", "by_tier"}
    assert [row["segment"] for row in analysis["segments"]["federated"]] == [0, 1, 2]
    for node in two_nodes.values():
        (run,) = BudgetLedger(node.ledger, node.name, 10.0).runs()
        assert (run.kind, run.steps, run.charge) == ("analysis", len(steps), pytest.approx(2.0))


def test_a_refusal_stops_the_analysis_with_the_nodes_reason(two_nodes):
    BudgetLedger(two_nodes[12].ledger, "franchise", 10.0).reserve("train", 9.0, 1e-5)
    spec = load_analysis_spec(segments_spec(iterations=1), "test")
    outcome = run_analysis(Grid(two_nodes), spec, "run-2", timeout=30.0)
    assert outcome.status == "stopped" and outcome.analysis is None
    assert list(outcome.reasons) == ["franchise"]
    assert "rule: ANALYSIS-LIFETIME" in outcome.reasons["franchise"]
    # the retailer answered the release step only, and that is what it was charged
    assert outcome.charged == {"retailer": 1.0}
    assert BudgetLedger(two_nodes[11].ledger, "retailer", 10.0).runs()[0].steps == 1


def test_a_missing_reply_stops_the_analysis(two_nodes):
    spec = load_analysis_spec(segments_spec(iterations=1), "test")
    outcome = run_analysis(Grid(two_nodes, silent=(12,)), spec, "run-3", timeout=5.0)
    assert outcome.status == "stopped"
    assert outcome.reasons == {"node 12": "no reply within 5 s"}


class TamperingGrid(Grid):
    """Rewrites one node's release on its way to the coordinator (a broken or hostile node)."""

    def send_and_receive(self, messages, *, timeout=None):
        replies = list(super().send_and_receive(messages, timeout=timeout))
        for reply in replies:
            records = reply.content.config_records
            if reply.metadata.src_node_id == 12 and ANALYSIS_KEY in records:
                release = decode_analysis_reply(dict(records[ANALYSIS_KEY]))
                release["format"] = "something-else/9"
                records[ANALYSIS_KEY] = ConfigRecord(encode_analysis_reply(release))
        return replies


def test_a_release_the_library_refuses_stops_the_analysis(two_nodes):
    spec = load_analysis_spec(segments_spec(iterations=1), "test")
    outcome = run_analysis(TamperingGrid(two_nodes), spec, "run-4", timeout=5.0)
    assert outcome.status == "stopped" and outcome.analysis is None
    assert "release of node 'franchise'" in outcome.reasons["coordinator"]
    # control: the same grid without tampering completes
    assert run_analysis(Grid(two_nodes), spec, "run-5", timeout=5.0).status == "completed"
