"""Config-level rules of the compliance review (plain dicts, no torch, no Flower)."""

from pathlib import Path

import pytest

from confide.privacy import RULES, ConfigReview, NodeFacts, evaluate_config, rule_catalogue_document
from confide.privacy.registry import rules_for
from confide.privacy.review_rules import find_inline_secrets, transport, widening_changes
from confide.settings import SettingsError

# Key-like high-entropy strings (not real keys).
B64_KEY = "q8Zr3vN1xWc7Lm2Pd9Ty5Ks0Hb4Jf6Ge-Ua_Ro1Ei8="
HEX_KEY = "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


def base() -> dict:
    return {
        "federation": {
            "name": "f",
            "nodes": [
                {"name": "a", "policy": "p.yaml", "data": "a.csv", "max_epsilon_per_run": 3.0}
            ],
        },
        "task": {
            "name": "t",
            "label": {"name": "churned"},
            "features": [{"name": "age"}, {"name": "province"}],
        },
        "dp": {"enabled": True, "epsilon": 3.0, "delta": 1e-5, "noise": "secure"},
        "secure": {
            "secagg": {"enabled": True},
            "client_dp": {"enabled": True, "noise_multiplier": 0.5, "clipping_norm": 2.0},
        },
        "strategy": {
            "algorithm": {"min_train_nodes": 2, "min_evaluate_nodes": 2, "min_available_nodes": 2}
        },
        "run": {"root": "runs", "name": "f-t"},
    }


def reviewed(review: ConfigReview) -> list:
    """The config findings less the per-node noise-source records (test_noise_review.py)."""
    return [f for f in evaluate_config(review) if f.rule_id != "DP-NOISE-SOURCE"]


def ids(findings) -> list[str]:
    return [f.rule_id for f in findings]


def test_base_config_has_no_config_findings():
    assert reviewed(ConfigReview(base(), baseline=base())) == []


@pytest.mark.parametrize("deployment", [{"transport": "insecure"}, {"insecure": True}])
def test_transport_insecure_fires(deployment):
    cfg = {**base(), "deployment": deployment}
    found = reviewed(ConfigReview(cfg))
    assert ids(found) == ["TRANSPORT-INSECURE"] and found[0].severity == "ERROR"


def test_unknown_transport_is_refused_not_reviewed():
    cfg = {**base(), "deployment": {"transport": "carrier-pigeon"}}
    with pytest.raises(SettingsError, match=r"^deployment\.transport must be tls or insecure"):
        reviewed(ConfigReview(cfg))


def test_transport_tls_and_simulation_are_fine():
    assert transport(base()) == "simulation"
    assert transport({**base(), "deployment": {"transport": "tls"}}) == "tls"
    assert reviewed(ConfigReview({**base(), "deployment": {"transport": "tls"}})) == []


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("federation", "note"), f"key={B64_KEY}"),
        (("run", "salt"), HEX_KEY),
        (("secure", "cert"), PEM),
        (("federation", "superlink_password"), "hunter2"),
        (("run", "api_key"), "abc"),
        (("federation", "access-token"), "short"),
    ],
)
def test_config_secret_fires_and_never_prints_the_value(where, value):
    cfg = base()
    cfg[where[0]][where[1]] = value
    found = reviewed(ConfigReview(cfg))
    assert ids(found) == ["CONFIG-SECRET"]
    assert found[0].field == f"{where[0]}.{where[1]}"
    assert value not in found[0].message and value not in str(found[0])


def test_secret_scan_spares_paths_hashes_interpolations_and_names():
    cfg = base()
    cfg["federation"]["nodes"][0]["keys"] = "/home/me/org/keys.json"
    cfg["run"]["token_file"] = "/run/secrets/token"
    cfg["run"]["password"] = "${oc.env:LEDGER_PASSWORD}"
    cfg["run"]["config_sha256"] = "ab" * 32
    cfg["strategy"]["algorithm"]["_target_"] = "flwr.serverapp.strategy.FedAvg"
    cfg["run"]["name"] = "20250101T000000000000Z-default-churn"
    assert find_inline_secrets(cfg) == []


def test_secrets_are_looked_for_in_the_unresolved_config():
    raw = base()
    raw["run"]["password"] = "${oc.env:PW}"
    resolved = base()
    resolved["run"]["password"] = "Sup3r-Secret-From-Env"
    assert reviewed(ConfigReview(resolved, raw_config=raw)) == []


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda c: c["dp"].update(enabled=False), "dp.enabled"),
        (lambda c: c["dp"].update(epsilon=8.0), "dp.epsilon"),
        (lambda c: c["dp"].update(delta=1e-3), "dp.delta"),
        (lambda c: c["dp"].update(noise="seeded"), "dp.noise"),
        (lambda c: c["secure"]["secagg"].update(enabled=False), "secure.secagg.enabled"),
        (lambda c: c["secure"]["client_dp"].update(enabled=False), "secure.client_dp.enabled"),
        (
            lambda c: c["secure"]["client_dp"].update(noise_multiplier=0.1),
            "secure.client_dp.noise_multiplier",
        ),
        (
            lambda c: c["secure"]["client_dp"].update(clipping_norm=9.0),
            "secure.client_dp.clipping_norm",
        ),
        (
            lambda c: c["strategy"]["algorithm"].update(min_train_nodes=1),
            "strategy.algorithm.min_train_nodes",
        ),
        (lambda c: c.update(deployment={"transport": "insecure"}), "deployment.transport"),
        (lambda c: c["task"]["features"].append({"name": "national_id"}), "task.features"),
        (lambda c: c["task"]["label"].update(name="responded_offer"), "task.label"),
        (
            lambda c: c["federation"]["nodes"][0].update(policy="other.yaml"),
            "federation.nodes[a].policy",
        ),
        (
            lambda c: c["federation"]["nodes"][0].update(max_epsilon_per_run=9.0),
            "federation.nodes[a].max_epsilon_per_run",
        ),
        (
            lambda c: c["federation"]["nodes"][0].pop("max_epsilon_per_run"),
            "federation.nodes[a].max_epsilon_per_run",
        ),
    ],
)
def test_override_widens_fires_for_each_widening(change, key):
    cfg = base()
    change(cfg)
    found = [
        f for f in reviewed(ConfigReview(cfg, baseline=base())) if f.rule_id == "OVERRIDE-WIDENS"
    ]
    assert [f.field for f in found] == [key] and found[0].severity == "WARN"


def test_narrowing_is_not_widening():
    cfg = base()
    cfg["dp"]["epsilon"] = 1.0
    cfg["strategy"]["algorithm"]["min_train_nodes"] = 5
    cfg["task"]["features"].pop()
    assert widening_changes(base(), cfg) == []


def test_config_invalid_fires():
    found = reviewed(ConfigReview(base(), job_error="rounds must be >= 1 (rule: rounds)"))
    assert ids(found) == ["CONFIG-INVALID"] and "rounds" in found[0].message


@pytest.mark.parametrize("status", ["missing", "unreadable"])
def test_data_missing_fires(status):
    found = reviewed(ConfigReview(base(), nodes=(NodeFacts("a", data_status=status),)))
    assert ids(found) == ["DATA-MISSING"] and found[0].node == "a"


@pytest.mark.parametrize("status", ["not-configured", "missing", "permissions"])
def test_node_keys_fires(status):
    facts = NodeFacts("a", keys_status=status, crypto_columns=("customer_id",))
    found = reviewed(ConfigReview(base(), nodes=(facts,)))
    assert ids(found) == ["NODE-KEYS"] and found[0].field == "customer_id"


def test_node_keys_quiet_without_crypto_columns_or_with_keys():
    nodes = (
        NodeFacts("a", keys_status="not-configured"),
        NodeFacts("b", keys_status="ok", crypto_columns=("id",)),
        NodeFacts("c", keys_status="generated", crypto_columns=("id",)),
    )
    assert reviewed(ConfigReview(base(), nodes=nodes)) == []


def test_ledger_integrity_fires():
    found = reviewed(ConfigReview(base(), nodes=(NodeFacts("a", ledger_error="bad"),)))
    assert ids(found) == ["LEDGER-INTEGRITY"]


def test_every_config_rule_is_registered_with_a_rationale():
    config_rules = {r.rule_id for r in rules_for("config")}
    assert config_rules == {
        "CONFIG-INVALID",
        "TRANSPORT-INSECURE",
        "CONFIG-SECRET",
        "OVERRIDE-WIDENS",
        "DATA-MISSING",
        "NODE-KEYS",
        "LEDGER-INTEGRITY",
        "DP-NOISE-NOT-SECURE",
        "DP-NOISE-SOURCE",
    }
    for rid in config_rules:
        assert len(RULES[rid].rationale) > 60


def test_docs_rules_md_is_generated_from_the_registry():
    doc = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
    assert doc.read_text(encoding="utf-8") == rule_catalogue_document(), (
        "docs/rules.md is stale: run `confide rules --out docs/rules.md`"
    )
    text = rule_catalogue_document()
    for rid in RULES:
        assert f"`{rid}`" in text
    assert "PIPL" in text and "GB/T 35273" in text and "GDPR art. 9" in text
