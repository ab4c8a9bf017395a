"""The canary search can fail: it finds every seeded value in the node's own data and in a
Flower reply that carries one in any slot a reply has (weights, metrics, config), serialized
exactly as the outgoing-message audit writes it. Without this, "no canary found" in the
simulation and deployment canary tests would prove nothing."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.supercore.task_identity import TaskIdentity

from confide.clients.audit import write_outgoing
from confide.simulations.node_profiles import get_profile
from confide.simulations.synth import generate_customers, write_node_csv
from tests.canary import CORE_CANARIES, GENERAL_CANARIES, canary_patterns, find_canaries


@pytest.fixture
def flower_task(monkeypatch):
    """The process identity Flower's Message constructor reads (set by its engines)."""
    monkeypatch.setattr(TaskIdentity, "_run_id", 7)
    monkeypatch.setattr(TaskIdentity, "_node_id", 1)
    monkeypatch.setattr(TaskIdentity, "_task_id", 1)


# four core canaries share the part "CANARY", registered once per column
SHARED_CANARY_PART = {"customer_id:CANARY", "name:CANARY", "national_id:CANARY", "bank_card:CANARY"}


def _names(hits: list[str]) -> set[str]:
    return {hit.rsplit(": ", 1)[1] for hit in hits}


def _reply(weights: np.ndarray, metrics: dict, config: dict) -> Message:
    request = Message(RecordDict({}), dst_node_id=5, message_type=MessageType.TRAIN)
    content = RecordDict(
        {
            "arrays": ArrayRecord({"linear.weight": Array(weights)}),
            "metrics": MetricRecord(metrics),
            "confide": ConfigRecord(config),
        }
    )
    return Message(content=content, reply_to=request)


def test_the_search_finds_every_seeded_value_in_the_nodes_own_data(tmp_path):
    from tests.canary import seed_canaries

    csv = write_node_csv(generate_customers(get_profile("retailer", 50), 3), tmp_path / "c.csv")
    assert find_canaries([csv]) == []  # control: clean synthetic data has none
    seed_canaries(csv)
    hits = _names(find_canaries([csv]))
    text_patterns = {n for n in canary_patterns() if not n.endswith((":f64", ":f32"))}
    assert hits == text_patterns  # every core and general value, as text


def test_the_search_finds_a_canary_in_any_slot_of_a_serialized_reply(tmp_path, flower_task):
    clean = _reply(np.zeros((1, 4), np.float32), {"train_loss": 0.5}, {"status": "ok"})
    write_outgoing(tmp_path / "clean", clean)
    assert find_canaries([tmp_path / "clean"]) == []  # control: an ordinary reply is clean

    weight = np.zeros((1, 4), np.float32)
    weight[0, 2] = GENERAL_CANARIES["avg_basket_value"]  # a raw value smuggled into the weights
    leaks = {
        "weights": (
            _reply(weight, {"train_loss": 0.5}, {"status": "ok"}),
            {"avg_basket_value:f32"},
        ),
        "metric": (
            _reply(np.zeros((1, 4), np.float32), {"m": GENERAL_CANARIES["monetary_12m"]}, {}),
            {"monetary_12m:f64"},
        ),
        "config": (
            _reply(np.zeros((1, 4), np.float32), {}, {"reason": CORE_CANARIES["national_id"]}),
            {"national_id", *SHARED_CANARY_PART},
        ),
    }
    for slot, (message, expected) in leaks.items():
        folder = tmp_path / slot
        path = write_outgoing(folder, message)
        assert path.read_bytes()  # what the audit mod would keep
        assert _names(find_canaries([folder])) == expected, slot
