"""Node-side secure mods: the legacy FitIns/FitRes adapter used under SecAgg+, pass-through."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.supercore.task_identity import TaskIdentity

from confide.clients.secure_mods import legacy_fit_adapter, secure_mod

KEYS = ["linear.weight", "linear.bias"]
ARRAYS = [np.ones((1, 3), dtype=np.float32), np.zeros(1, dtype=np.float32)]


@pytest.fixture(autouse=True)
def _task_identity(monkeypatch):
    """Messages are created inside a Flower task; give this process one."""
    for attr, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 7)):
        monkeypatch.setattr(TaskIdentity, attr, value)


def _ctx() -> Context:
    return Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})


def _fit_message(config: dict) -> Message:
    fit_ins = FitIns(
        ndarrays_to_parameters(ARRAYS), {**config, "confide-array-keys": json.dumps(KEYS)}
    )
    content = compat.fitins_to_recorddict(fit_ins, keep_input=True)
    return Message(content, dst_node_id=7, message_type=MessageType.TRAIN)


def _handler(status: str):
    seen = {}

    def handle(msg: Message, ctx: Context) -> Message:
        seen["arrays"] = list(msg.content["arrays"].keys())
        seen["config"] = dict(msg.content["config"])
        records: dict = {}
        if status == "ok":
            new = {k: Array(v + 1.0) for k, v in zip(KEYS, ARRAYS, strict=True)}
            records = {
                "arrays": ArrayRecord(new),
                "metrics": MetricRecord({"num-examples": 480.0, "epsilon": 1.5}),
            }
        content = RecordDict(records)
        content["confide"] = ConfigRecord({"node": "shop_a", "status": status, "reason": "why"})
        return Message(content, reply_to=msg)

    return handle, seen


def test_adapter_presents_the_usual_train_message_and_returns_a_fitres():
    handle, seen = _handler("ok")
    reply = legacy_fit_adapter(_fit_message({"server-round": 1}), _ctx(), handle)
    assert seen["arrays"] == KEYS and seen["config"]["server-round"] == 1
    res = compat.recorddict_to_fitres(reply.content, keep_input=True)
    assert res.num_examples == 480 and res.metrics["status"] == "ok"
    assert res.metrics["epsilon"] == 1.5 and res.metrics["node"] == "shop_a"
    np.testing.assert_allclose(parameters_to_ndarrays(res.parameters)[0], ARRAYS[0] + 1.0)


def test_refusal_is_a_zero_weight_update_with_its_reason():
    handle, _ = _handler("refused")
    reply = legacy_fit_adapter(_fit_message({"server-round": 1}), _ctx(), handle)
    res = compat.recorddict_to_fitres(reply.content, keep_input=True)
    assert res.num_examples == 0 and res.metrics["status"] == "refused"
    assert res.metrics["reason"] == "why"


def test_client_dp_under_secagg_weights_nodes_equally():
    handle, seen = _handler("ok")
    reply = legacy_fit_adapter(
        _fit_message({"server-round": 1, "clipping_norm": 2.0}), _ctx(), handle
    )
    assert "clipping_norm" not in seen["config"]
    assert compat.recorddict_to_fitres(reply.content, keep_input=True).num_examples == 1


def test_plain_messages_pass_through_untouched():
    content = RecordDict(
        {
            "arrays": ArrayRecord({"w": Array(ARRAYS[0])}),
            "config": ConfigRecord({"server-round": 1}),
        }
    )
    msg = Message(content, dst_node_id=7, message_type=MessageType.TRAIN)
    calls = []

    def handle(m, c):
        calls.append(m)
        return Message(RecordDict(), reply_to=m)

    secure_mod(msg, _ctx(), handle)
    assert calls == [msg]
