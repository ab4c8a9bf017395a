"""The vertical part of a job: parsing ``kind: vertical`` federations into ``Job.vertical`` and
checking every node's policy against the task (rules VFL-*), each refusal one line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from confide.config import compose_config, to_container
from confide.job import JobError, parse_job
from confide.privacy import load_policy, parse_policy
from confide.vertical_spec import (
    VerticalSpec,
    VerticalSpecError,
    check_feature_ownership,
    parse_vertical,
)

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "simulations" / "policies"
BANK_FEATURES = (
    "age",
    "tenure_months",
    "balance_band",
    "credit_utilisation",
    "repayment_delays_12m",
    "products_held",
    "salary_account",
    "city_tier",
)
SHOP_FEATURES = (
    "purchases_12m",
    "spend_12m",
    "recency_days",
    "returns_12m",
    "app_sessions_30d",
    "wallet_pay_share",
    "category_pref",
)


@pytest.fixture(scope="module")
def config() -> dict:
    return to_container(compose_config(["federation=bank_ecommerce_split", "task=joint_churn"]))


@pytest.fixture(scope="module")
def job(config):
    return parse_job(config)


def _with(config: dict, dotted: str, value) -> dict:
    out = copy.deepcopy(config)
    target = out
    keys = dotted.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
    if value is _DELETE:
        target.pop(keys[-1])
    elif isinstance(target, list):
        target[int(keys[-1])] = value
    else:
        target[keys[-1]] = value
    return out


_DELETE = object()


def _raw_policy(name: str) -> dict:
    return yaml.safe_load((POLICIES / name).read_text(encoding="utf-8"))


def _policies(bank: dict | None = None, shop: dict | None = None) -> dict:
    return {
        "bank": parse_policy(bank or _raw_policy("bank_customers.yaml"), "bank.yaml"),
        "ecommerce": parse_policy(shop or _raw_policy("ecommerce_customers.yaml"), "shop.yaml"),
    }


def test_the_built_in_federation_parses_to_a_vertical_spec(job):
    assert job.vertical == VerticalSpec(
        join_key="customer_id",
        label_node="bank",
        feature_nodes=("ecommerce",),
        label_dp_epsilon=0.8,
        embedding_dp_epsilon=1.0,
        reveal_to="label_node",
        pad_to=None,
        min_overlap=100,
        embedding_clip=2.0,
    )
    assert job.vertical.nodes == ("bank", "ecommerce")
    assert job.vertical.features_by_node == {}


def test_a_horizontal_federation_has_no_vertical_spec():
    job = parse_job(to_container(compose_config(["rounds=1"])))
    assert job.vertical is None
    explicit = to_container(compose_config(["rounds=1", "+federation.kind=horizontal"]))
    assert parse_job(explicit).vertical is None


def test_vertical_spec_error_is_a_job_error():
    assert issubclass(VerticalSpecError, JobError)


@pytest.mark.parametrize(
    ("dotted", "value", "expected"),
    [
        ("federation.kind", "diagonal", "federation.kind: must be one of horizontal, vertical"),
        ("federation.label_node", "insurer", "federation.label_node: must name one of the nodes"),
        ("federation.label_node", None, "federation.label_node: must name one of the nodes"),
        ("federation.join_key", "", "federation.join_key: must name the column"),
        ("federation.join_key", " customer_id", "federation.join_key: must name the column"),
        ("federation.join_key", 7, "federation.join_key: must name the column"),
        (
            "federation.psi.min_overlap",
            0,
            "min_overlap: must be a whole number >= 1",
        ),
        ("federation.psi.min_overlap", 2.5, "federation.psi.min_overlap: must be a whole number"),
        ("federation.psi.pad_to", 0, "federation.psi.pad_to: must be a whole number >= 1"),
        ("federation.psi.reveal_to", "coordinator", "federation.psi.reveal_to: must be one of"),
        ("federation.psi.salt", "x", "federation.psi: unknown keys ['salt']"),
        ("federation.psi", [1], "federation.psi: must be a mapping"),
        (
            "federation.vertical.label_dp_epsilon",
            0,
            "dp_epsilon: must be a finite number > 0",
        ),
        ("federation.vertical.label_dp_epsilon", True, "label_dp_epsilon: must be a number"),
        ("federation.vertical.embedding_dp_epsilon", float("inf"), "must be a finite number > 0"),
        ("federation.vertical.label_dp_epsilon", _DELETE, "vertical.label_dp_epsilon: is required"),
        ("federation.vertical.protocol", "split", "vertical.protocol: must be one of"),
        ("federation.vertical.label_row_clip", 1.0, "label_row_clip: is a setting of protocol"),
        ("federation.vertical.embedding_clip", -1.0, "embedding_clip: must be a finite number > 0"),
        (
            "federation.vertical.label_dp_epsilon",
            3.0,
            "dp_epsilon: must be below dp.epsilon=3",
        ),
        ("federation.vertical.embedding_dp_epsilon", 3.5, "must be below dp.epsilon=3"),
        ("federation.source", {"profile": "retailer"}, "federation.source: a vertical federation"),
        ("federation.partition", {"scheme": "iid"}, "federation.partition: a vertical federation"),
        ("secure.secagg.enabled", True, "config secure.secagg.enabled: secure aggregation"),
        ("simulation.dropout_rate", 0.1, "config simulation.dropout_rate: must be 0"),
    ],
)
def test_each_bad_vertical_setting_is_one_line_naming_the_field(config, dotted, value, expected):
    with pytest.raises(VerticalSpecError) as err:
        parse_job(_with(config, dotted, value))
    message = str(err.value)
    assert expected in message
    assert "(rule: " in message and "\n" not in message


def test_a_vertical_federation_needs_two_nodes(config):
    one = _with(config, "federation.nodes", config["federation"]["nodes"][:1])
    with pytest.raises(VerticalSpecError, match=r"at least 2 nodes \(rule: vertical federation\)"):
        parse_job(one)


def test_a_node_part_is_refused_on_a_vertical_federation(config):
    with pytest.raises(VerticalSpecError, match=r"federation.nodes\[1\].part"):
        parse_job(_with(config, "federation.nodes.1.part", 0))


@pytest.mark.parametrize("key", ["join_key", "label_node", "psi", "vertical"])
def test_vertical_keys_are_refused_on_a_horizontal_federation(key):
    config = to_container(compose_config(["rounds=1"]))
    config["federation"][key] = {"min_overlap": 5} if key in ("psi", "vertical") else "x"
    with pytest.raises(VerticalSpecError, match=rf"federation.{key}: is a vertical federation key"):
        parse_job(config)


def test_the_epsilon_bound_applies_only_when_dp_is_on(config, job):
    off = _with(_with(config, "dp.enabled", False), "federation.vertical.label_dp_epsilon", 5.0)
    spec = parse_vertical(off, ["bank", "ecommerce"], parse_job(off).dp)
    assert spec is not None and spec.label_dp_epsilon == 5.0
    on = _with(config, "federation.vertical.label_dp_epsilon", 5.0)  # control: refused with DP
    with pytest.raises(VerticalSpecError, match=r"must be below dp\.epsilon"):
        parse_vertical(on, ["bank", "ecommerce"], job.dp)


def test_shipped_policies_give_each_node_its_features(job):
    policies = {n.name: load_policy(n.policy) for n in job.nodes}
    spec = check_feature_ownership(job.vertical, job.task, policies, "bank_ecommerce")
    assert spec.features_by_node == {"bank": BANK_FEATURES, "ecommerce": SHOP_FEATURES}
    assert spec.node_features("ecommerce") == SHOP_FEATURES
    with pytest.raises(VerticalSpecError, match="node 'insurer' is not part"):
        spec.node_features("insurer")
    with pytest.raises(VerticalSpecError, match="feature ownership has not been checked"):
        job.vertical.node_features("bank")


def _refusal(job, policies, *, dp_enabled=True) -> str:
    with pytest.raises(VerticalSpecError) as err:
        check_feature_ownership(job.vertical, job.task, policies, "fed.yaml", dp_enabled=dp_enabled)
    message = str(err.value)
    assert message.startswith("fed.yaml: vertical job refused: ") and "\n" not in message
    return message


def test_a_feature_held_twice_names_both_nodes(job):
    shop = _raw_policy("ecommerce_customers.yaml")
    shop["columns"]["age"] = {"tier": "general_sensitive", "role": "feature"}
    message = _refusal(job, _policies(shop=shop))
    assert (
        "task feature 'age' is held (role feature) by nodes bank, ecommerce; in a vertical job "
        "each feature is held by exactly one node (rule VFL-FEATURE-TWICE)"
    ) in message


def test_a_feature_held_by_no_node_is_named(job):
    shop = _raw_policy("ecommerce_customers.yaml")
    shop["columns"]["wallet_pay_share"]["role"] = "none"
    message = _refusal(job, _policies(shop=shop))
    assert "task feature 'wallet_pay_share' is held (role feature) by no node" in message
    assert "(rule VFL-FEATURE-UNHELD)" in message


def test_the_label_at_a_feature_node_is_refused(job):
    shop = _raw_policy("ecommerce_customers.yaml")
    shop["columns"]["churned"] = {"tier": "general_sensitive", "role": "label"}
    message = _refusal(job, _policies(shop=shop))
    assert "node 'ecommerce' lists the task label 'churned' with role label" in message
    assert "(rule VFL-LABEL-AT-FEATURE-NODE)" in message


def test_the_label_missing_at_the_label_node_is_refused(job):
    bank = _raw_policy("bank_customers.yaml")
    bank["columns"]["churned"]["role"] = "none"
    assert "(rule VFL-LABEL-MISSING)" in _refusal(job, _policies(bank=bank))


def test_a_join_key_below_core_sensitive_is_refused(job):
    shop = _raw_policy("ecommerce_customers.yaml")
    shop["columns"]["customer_id"] = {"tier": "general_sensitive", "role": "id"}
    message = _refusal(job, _policies(shop=shop))
    assert (
        "node 'ecommerce': join key 'customer_id' has tier general_sensitive in policy shop.yaml; "
        "a join key must be core_sensitive at every node (rule VFL-JOIN-KEY-TIER)"
    ) in message
    assert "VFL-JOIN-KEY-MISSING" not in message


def test_a_join_key_missing_from_a_policy_is_refused(job):
    bank = _raw_policy("bank_customers.yaml")
    del bank["columns"]["customer_id"]
    message = _refusal(job, _policies(bank=bank))
    assert "node 'bank': join key 'customer_id' is not a column of policy bank.yaml" in message
    assert "(rule VFL-JOIN-KEY-MISSING)" in message


def test_dp_off_needs_a_research_policy_at_every_node(job):
    message = _refusal(job, _policies(), dp_enabled=False)
    assert message.count("(rule VFL-DP-OFF)") == 2
    bank, shop = _raw_policy("bank_customers.yaml"), _raw_policy("ecommerce_customers.yaml")
    bank["dp"]["require_dp"] = False
    message = _refusal(job, _policies(bank=bank, shop=shop), dp_enabled=False)
    assert message.count("(rule VFL-DP-OFF)") == 1 and "the policy of node 'ecommerce'" in message
    shop["dp"]["require_dp"] = False  # control: every node's policy is a research policy
    spec = check_feature_ownership(
        job.vertical, job.task, _policies(bank=bank, shop=shop), "fed.yaml", dp_enabled=False
    )
    assert spec.features_by_node["bank"] == BANK_FEATURES


def test_a_missing_policy_is_refused(job):
    with pytest.raises(VerticalSpecError, match=r"no policy given for node\(s\) ecommerce"):
        check_feature_ownership(job.vertical, job.task, {"bank": _policies()["bank"]}, "x")


def test_the_default_protocol_is_secure_linear_with_its_own_settings_only():
    """The shipped bank_ecommerce runs the secure linear protocol; its split-learning
    epsilons, a second feature node or a non-linear model are refused with one line each."""
    config = to_container(compose_config(["federation=bank_ecommerce", "task=joint_churn"]))
    job = parse_job(config)
    assert job.vertical is not None and job.vertical.secure_linear
    assert (job.vertical.label_row_clip, job.vertical.feature_row_clip) == (2.5, 2.0)
    no_block = _with(config, "federation.vertical", _DELETE)
    assert parse_job(no_block).vertical.protocol == "secure_linear"  # the default
    cases = [
        (
            _with(config, "federation.vertical.label_dp_epsilon", 0.8),
            "is a setting of protocol split_learning",
        ),
        (_with(config, "model", {"name": "mlp"}), "needs protocol split_learning"),
        (_with(config, "federation.vertical.feature_row_clip", 0), "must be a finite number > 0"),
    ]
    three = copy.deepcopy(config)
    three["federation"]["nodes"].append({**three["federation"]["nodes"][1], "name": "third"})
    cases.append((three, "takes exactly one feature node"))
    for bad, expected in cases:
        with pytest.raises(VerticalSpecError) as info:
            parse_job(bad)
        assert expected in str(info.value) and "\n" not in str(info.value)
