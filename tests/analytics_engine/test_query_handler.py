"""The deployment ClientApp (the one SuperNodes run) answers analysis QUERY messages: the node's
settings come from its own --node-config, the coordinator's code identity must match, and a
refusal is the node's one-line reply with no release in it."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.supercore.task_identity import TaskIdentity

from confide.clients import client_app
from confide.code_identity import identity_run_config
from confide.wire import ANALYSIS_KEY, AnalysisRequest, decode_analysis_reply

from .conftest import query_spec

NODE_ID = 7


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", NODE_ID)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _context(node, run_config) -> Context:
    node_config = {
        "name": node.name,
        "data-path": str(node.data),
        "policy-path": str(node.policy),
        "keys-path": str(node.keys),
        "ledger-path": str(node.ledger),
        "max-epsilon-per-run": "2.0",  # the node's own cap, below its policy's 8
    }
    return Context(1, NODE_ID, node_config, RecordDict(), run_config)


def _query(epsilon: float) -> Message:
    request = AnalysisRequest("run-1", "release", query_spec(epsilon))
    content = RecordDict({ANALYSIS_KEY: ConfigRecord(request.to_config())})
    return Message(content, dst_node_id=NODE_ID, message_type=MessageType.QUERY)


def _status(reply: Message) -> dict:
    return dict(reply.content.config_records["confide"])


def test_supernode_answers_a_query_from_its_own_node_config(node):
    reply = client_app.app(_query(1.0), _context(node, identity_run_config()))
    assert _status(reply) == {"node": "retailer", "status": "ok", "reason": ""}
    release = decode_analysis_reply(dict(reply.content.config_records[ANALYSIS_KEY]))
    assert set(release["queries"]) == {"spend_by_province", "by_tier"}


def test_the_nodes_own_cap_and_code_identity_refuse_in_one_line(node):
    # above the node's --node-config cap (2) though within its policy (8)
    reply = client_app.app(_query(3.0), _context(node, identity_run_config()))
    assert _status(reply)["status"] == "refused"
    assert "rule: ANALYSIS-EPS-RUN" in _status(reply)["reason"]
    assert ANALYSIS_KEY not in reply.content.config_records
    assert not node.ledger.exists()
    # a coordinator running other code: refused before anything else
    other = {**identity_run_config(), "confide-code-digest": "0" * 64}
    reply = client_app.app(_query(1.0), _context(node, other))
    assert _status(reply)["status"] == "refused" and not node.ledger.exists()
    assert "digest" in _status(reply)["reason"]
