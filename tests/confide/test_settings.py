"""Typed ``secure`` and ``deployment`` settings: one set of defaults, one refusal, and every
reader (server, report, audit, review) agrees because each one reads these settings."""

from __future__ import annotations

import pytest
import yaml

from confide.audit import audit_config
from confide.config import compose_config, to_container
from confide.job import parse_job
from confide.privacy import ConfigReview, evaluate_config
from confide.reports.compliance import privacy_facts
from confide.reports.rundata import load_run
from confide.settings import (
    ClientDPSettings,
    DeploymentSettings,
    SecAggSettings,
    SecureConfigError,
    SecureSettings,
    SettingsError,
    parse_deployment,
    parse_secure,
)
from tests.reports.fake_run import make_run


def _default_config() -> dict:
    return to_container(compose_config([]))


# ----------------------------------------------------------------------------- defaults


def test_missing_sections_and_missing_enabled_are_off():
    off = SecureSettings(ClientDPSettings(), SecAggSettings())
    assert parse_secure({}) == off
    assert parse_secure({"secure": None}) == off
    assert parse_secure({"secure": {"secagg": {}, "client_dp": {}}}) == off
    # parameters without `enabled` do not switch anything on
    raw = {"secagg": {"num_shares": 3}, "client_dp": {"noise_multiplier": 1.0}}
    assert parse_secure({"secure": raw}) == off


def test_shipped_secure_groups_parse():
    both = parse_secure(to_container(compose_config(["secure=secagg_client_dp"])))
    assert both.secagg == SecAggSettings(enabled=True)
    assert both.client_dp == ClientDPSettings(True, "client", 0.5, 2.0)
    assert not both.unit_weights
    cdp = parse_secure(to_container(compose_config(["secure=client_dp"])))
    assert cdp.unit_weights and not cdp.secagg.enabled
    assert parse_secure(_default_config()) == SecureSettings()


def test_deployment_defaults():
    assert parse_deployment({}) == DeploymentSettings("simulation")
    assert not parse_deployment({}).networked
    assert parse_deployment({"deployment": {}}) == DeploymentSettings("tls")
    assert parse_deployment({"deployment": {"transport": "TLS"}}).transport == "tls"
    assert parse_deployment({"deployment": {"insecure": True}}).transport == "insecure"
    assert parse_deployment({"deployment": {"transport": "insecure"}}).networked


@pytest.mark.parametrize(
    ("deployment", "match"),
    [
        ({"transport": "carrier-pigeon"}, r"^deployment\.transport must be tls or insecure"),
        ({"transport": 7}, r"^deployment\.transport must be tls or insecure"),
        ({"insecure": "yes"}, r"^deployment\.insecure must be true or false"),
        ({"transport": "tls", "insecure": True}, r"contradicts deployment\.transport=tls"),
        ({"transprt": "tls"}, r"^deployment: unknown keys \['transprt'\]"),
        ("tls", r"^deployment must be a mapping"),
    ],
)
def test_unknown_transport_is_an_error_at_parse_time(deployment, match):
    with pytest.raises(SettingsError, match=match) as info:
        parse_deployment({"deployment": deployment})
    assert "carrier-pigeon" not in str(info.value) and "(rule: " in str(info.value)


@pytest.mark.parametrize(
    ("secure", "match"),
    [
        ({"secagg": {"enabled": "yes"}}, r"secure\.secagg\.enabled must be true or false"),
        ({"client_dp": {"enabled": True}}, r"needs numeric noise_multiplier and clipping_norm"),
        (
            {"client_dp": {"enabled": True, "noise_multiplier": 0.0, "clipping_norm": 1.0}},
            r"must be > 0",
        ),
        (
            {"client_dp": {"enabled": True, "clipping": "edge", "noise_multiplier": 1.0}},
            r"clipping must be client or server",
        ),
        ({"secagg": {"enabled": True, "num_shares": "all"}}, r"num_shares must be a number"),
        ({"secagg": {"enabled": True, "modulus_range": 2.5}}, r"must be a whole number"),
        ({"secagg": {"enabled": True, "shares": 2}}, r"unknown keys \['shares'\]"),
    ],
)
def test_secure_refusals(secure, match):
    with pytest.raises(SecureConfigError, match=match):
        parse_secure({"secure": secure})


# ---------------------------------------------------- every reader sees the same settings


def test_missing_enabled_is_off_for_server_report_and_audit(tmp_path):
    """Before typed settings the report showed SecAgg+ ON for a section without ``enabled``
    while the server ran without it."""
    run_dir = make_run(tmp_path, "no-enabled")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["secure"] = {"secagg": {"num_shares": 1.0}, "client_dp": {"clipping_norm": 2.0}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))

    assert parse_job(config).secure == SecureSettings()  # what the server runs with
    facts = privacy_facts(load_run(run_dir))
    assert (facts.secure_aggregation, facts.client_dp) == ("off", "off")
    report = audit_config(config)
    assert report.secure_aggregation.startswith("off") and report.client_dp == "off"


@pytest.mark.parametrize("reader", ["job (server)", "report", "review", "audit"])
def test_unknown_transport_is_refused_by_every_reader(tmp_path, reader):
    """Before typed settings the report called an unknown transport 'TLS' and the review
    called it 'insecure'; now every reader refuses it with the same error."""
    config = _default_config()
    config["deployment"] = {"transport": "carrier-pigeon"}
    run_dir = make_run(tmp_path, "pigeon")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    saved["deployment"] = {"transport": "carrier-pigeon"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, allow_unicode=True))
    read = {
        "job (server)": lambda: parse_job(config),
        "report": lambda: privacy_facts(load_run(run_dir)),
        "review": lambda: evaluate_config(ConfigReview(config)),
        "audit": lambda: audit_config(config),
    }[reader]
    with pytest.raises(SettingsError, match=r"^deployment\.transport must be tls or insecure"):
        read()


def test_tls_and_insecure_read_the_same_everywhere(tmp_path):
    for transport, report_text, audit_text in [
        ("tls", "Flower deployment engine, TLS", "Flower deployment engine over TLS"),
        ("insecure", "INSECURE (no TLS)", "WITHOUT TLS (insecure)"),
    ]:
        config = _default_config()
        config["deployment"] = {"transport": transport}
        run_dir = make_run(tmp_path, transport)
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
        saved["deployment"] = {"transport": transport}
        (run_dir / "config.yaml").write_text(yaml.safe_dump(saved, allow_unicode=True))
        assert parse_job(config).deployment == DeploymentSettings(transport)
        assert report_text in privacy_facts(load_run(run_dir)).transport
        assert audit_text in audit_config(config).transport
        findings = [f.rule_id for f in evaluate_config(ConfigReview(config))]
        insecure = [rule for rule in findings if rule.startswith("TRANSPORT")]
        assert insecure == (["TRANSPORT-INSECURE"] if transport == "insecure" else [])
