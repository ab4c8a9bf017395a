"""A vertical node's data check: the join key and every feature the node holds must be in its
data; each refusal is one line naming the node, the column and the rule, never a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from confide.clients.vertical_data import VerticalDataError, check_vertical_columns
from confide.modeling.errors import DataError
from confide.privacy import parse_policy
from confide.vertical_spec import VerticalSpec

SPEC = VerticalSpec(
    join_key="customer_id",
    label_node="bank",
    feature_nodes=("ecommerce",),
    label_dp_epsilon=1.0,
    embedding_dp_epsilon=2.0,
    features_by_node={"bank": ("age", "balance_band"), "ecommerce": ("spend_12m",)},
)
BANK = ["customer_id", "age", "balance_band", "churned"]


def test_complete_data_passes():
    check_vertical_columns(BANK, SPEC, "bank", "bank.csv")
    check_vertical_columns(["spend_12m", "customer_id"], SPEC, "ecommerce", "shop.csv")


def test_a_missing_join_key_is_one_line():
    with pytest.raises(VerticalDataError) as err:
        check_vertical_columns(["age", "balance_band"], SPEC, "bank", "bank.csv")
    assert str(err.value) == (
        "bank.csv: node 'bank': join key column 'customer_id' is missing from the data "
        "(rule VFL-JOIN-KEY-MISSING)"
    )
    assert isinstance(err.value, DataError)


def test_a_missing_feature_names_it():
    with pytest.raises(VerticalDataError) as err:
        check_vertical_columns(["customer_id", "age"], SPEC, "bank", "bank.csv")
    assert str(err.value) == (
        "bank.csv: node 'bank': 1 task feature(s) this node holds are missing from the data: "
        "'balance_band' (rule: schema)"
    )


def test_explicit_features_override_the_spec():
    check_vertical_columns(["customer_id"], SPEC, "bank", "b.csv", features=())
    with pytest.raises(VerticalDataError, match="'recency_days'"):
        check_vertical_columns(BANK, SPEC, "bank", "b.csv", features=("age", "recency_days"))


def test_without_ownership_only_the_join_key_is_checked():
    bare = VerticalSpec("customer_id", "bank", ("ecommerce",), 1.0, 2.0)
    check_vertical_columns(["customer_id"], bare, "bank", "b.csv")
    with pytest.raises(VerticalDataError, match="VFL-JOIN-KEY-MISSING"):  # control
        check_vertical_columns(["id"], bare, "bank", "b.csv")


def test_maps_to_resolves_the_data_column():
    policy = parse_policy(
        {
            "version": 1,
            "dataset": "shop",
            "columns": {
                "customer_id": {
                    "tier": "core_sensitive",
                    "role": "id",
                    "transform": "pseudonymize",
                },
                "gmv": {"tier": "general_sensitive", "role": "feature", "maps_to": "spend_12m"},
            },
            "dp": {"max_epsilon_per_run": 3, "lifetime_epsilon": 10, "max_delta": 1e-5},
        },
        "shop.yaml",
    )
    check_vertical_columns(["customer_id", "gmv"], SPEC, "ecommerce", "s.csv", policy=policy)
    with pytest.raises(VerticalDataError, match="'spend_12m'"):  # control: header by task name
        check_vertical_columns(["customer_id", "spend"], SPEC, "ecommerce", "s.csv", policy=policy)


def test_an_unknown_node_is_refused():
    with pytest.raises(VerticalDataError, match="node 'insurer' is not part"):
        check_vertical_columns(BANK, SPEC, "insurer", str(Path("x.csv")))
