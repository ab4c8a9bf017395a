"""A small node on disk (synthetic customers, the shipped policy with its own DP limits, a key
file) and analysis specs for the engine's node-handler tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from flwr.app import Context, RecordDict

from confide.clients.client_app import make_client_app
from confide.job import NodeSpec
from confide.privacy.keys import new_keyring_file
from confide.simulations.identities import PROVINCES
from confide.simulations.node_profiles import get_profile
from confide.simulations.synth import generate_customers, write_node_csv

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "simulations" / "policies" / "synthetic_customers.yaml"
ROWS = 400


def write_policy(path: Path, max_epsilon_per_run: float, lifetime_epsilon: float) -> Path:
    """The shipped synthetic policy with other DP limits."""
    policy = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    policy["dp"].update(
        {"max_epsilon_per_run": max_epsilon_per_run, "lifetime_epsilon": lifetime_epsilon}
    )
    path.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def customers_csv(tmp_path_factory) -> Path:
    """400 synthetic retailer customers (written once per session)."""
    folder = tmp_path_factory.mktemp("node-data")
    return write_node_csv(
        generate_customers(get_profile("retailer", ROWS), 7), folder / "customers.csv"
    )


@pytest.fixture
def node(tmp_path, customers_csv) -> NodeSpec:
    """A node with lifetime epsilon 10 and a per-run maximum of 8, its own keys and ledger."""
    keys = tmp_path / "keys.json"
    new_keyring_file(keys)
    return NodeSpec(
        name="retailer",
        policy=write_policy(tmp_path / "policy.yaml", 8.0, 10.0),
        data=customers_csv,
        keys=keys,
        ledger=tmp_path / "node" / "ledger.json",
    )


def query_spec(epsilon: float, **extra: Any) -> dict[str, Any]:
    """A queries-only analysis whose two queries share ``epsilon`` equally."""
    spec = {
        "name": "profile",
        "epsilon": epsilon,
        "delta": 0.0,
        "unit": {"id_column": "customer_id", "max_rows_per_customer": 1},
        "columns": {
            "monetary_12m": {"min": 0, "max": 20000},
            "province": {"categories": list(PROVINCES)},
            "city_tier": {"categories": [1, 2, 3, 4]},
        },
        "queries": [
            {
                "name": "spend_by_province",
                "stat": "sum",
                "column": "monetary_12m",
                "group_by": ["province"],
                "epsilon": epsilon / 2,
            },
            {"name": "by_tier", "stat": "count", "group_by": ["city_tier"], "epsilon": epsilon / 2},
        ],
    }
    spec.update(extra)
    return spec


def segments_spec(iterations: int = 2) -> dict[str, Any]:
    """A queries + segments analysis (epsilon 2: 1 for the queries, 1 for DP k-means)."""
    spec = query_spec(1.0)
    spec["epsilon"] = 2.0
    spec["columns"].update(
        {
            "recency_days": {"min": 0, "max": 365},
            "frequency_12m": {"min": 0, "max": 60},
            "churned": {"min": 0, "max": 1},
        }
    )
    spec["segments"] = {
        "epsilon": 1.0,
        "k": 3,
        "iterations": iterations,
        "features": ["recency_days", "frequency_12m", "monetary_12m"],
        "outcome": "churned",
        "value": "monetary_12m",
    }
    return spec


class Grid:
    """Delivers each message to the ClientApp of its node; ``silent`` nodes never reply."""

    def __init__(self, nodes: dict[int, NodeSpec], silent: tuple[int, ...] = ()) -> None:
        self.nodes, self.silent, self.sent = nodes, silent, []

        def no_training(context):
            raise AssertionError("an analysis sends no training message")

        self.app = make_client_app(no_training, resolve_node=lambda c: self.nodes[c.node_id])

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for msg in messages:
            node_id = msg.metadata.dst_node_id
            self.sent.append((node_id, str(msg.metadata.message_type)))
            if node_id not in self.silent:
                replies.append(self.app(msg, Context(1, node_id, {}, RecordDict(), {})))
        return replies
