"""The review says which noise source each node uses; seeded noise in deployment is an ERROR."""

from __future__ import annotations

import pytest

from confide.privacy import ConfigReview, evaluate_config
from confide.privacy.review_rules import FEDERATION, noise_findings
from tests.privacy.test_review_rules import base


def noise(config) -> list[tuple[str, str, str]]:
    return [
        (f.severity, f.rule_id, f.node)
        for f in evaluate_config(ConfigReview(config))
        if f.rule_id.startswith("DP-NOISE")
    ]


def with_noise(kind: str, transport: str | None = None) -> dict:
    cfg = base()
    cfg["dp"]["noise"] = kind
    cfg["federation"]["nodes"].append({"name": "b", "policy": "p.yaml", "data": "b.csv"})
    if transport is not None:
        cfg["deployment"] = {"transport": transport}
    return cfg


def test_simulation_with_seeded_noise_is_recorded_per_node_not_flagged():
    assert noise(with_noise("seeded")) == [
        ("INFO", "DP-NOISE-SOURCE", "a"),
        ("INFO", "DP-NOISE-SOURCE", "b"),
    ]
    messages = [f.message for f in evaluate_config(ConfigReview(with_noise("seeded")))]
    assert messages[0].startswith("node 'a' draws DP noise from seeded: ")


@pytest.mark.parametrize("transport", ["tls", "insecure"])
def test_a_deployment_config_without_secure_noise_is_an_error(transport):
    found = noise(with_noise("seeded", transport))
    assert ("ERROR", "DP-NOISE-NOT-SECURE", FEDERATION) in found
    # control: the same deployment with secure noise is only recorded
    assert noise(with_noise("secure", transport)) == [("INFO", "DP-NOISE-SOURCE", FEDERATION)]


def test_without_dp_there_is_no_noise_to_review():
    cfg = with_noise("seeded", "tls")
    cfg["dp"]["enabled"] = False
    assert noise(cfg) == []


def errors(findings) -> list[tuple[str, str]]:
    return [(f.rule_id, f.node) for f in findings if f.severity == "ERROR"]


def test_a_node_that_reported_seeded_noise_in_deployment_is_flagged():
    reported = {"shop_a": "secure", "shop_b": "seeded"}
    found = noise_findings("tls", reported)
    assert errors(found) == [("DP-NOISE-NOT-SECURE", "shop_b")]
    assert found[-1].message.startswith("node 'shop_b' drew seeded DP noise on the deployment")
    # control: every node secure, nothing flagged
    assert errors(noise_findings("tls", dict.fromkeys(reported, "secure"))) == []
