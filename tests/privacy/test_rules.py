import pytest

from confide.privacy import (
    RULES,
    Finding,
    JobUsage,
    Rule,
    RuleViolation,
    enforce,
    evaluate_job,
    parse_policy,
    rule_catalogue_document,
)
from confide.privacy.findings import by_id
from confide.privacy.registry import DEFINING_MODULES, build_registry


def _policy(require_dp=True):
    return parse_policy(
        {
            "version": 1,
            "dataset": "ds",
            "columns": {
                "cid": {"tier": "core_sensitive", "role": "id", "transform": "pseudonymize"},
                "phone": {"tier": "core_sensitive", "transform": "mask:mobile"},
                "age": {"tier": "general_sensitive", "role": "feature"},
                "region": {"tier": "non_sensitive", "role": "feature"},
                "note": {"tier": "non_sensitive"},
                "churn": {"tier": "non_sensitive", "role": "label"},
            },
            "dp": {
                "max_epsilon_per_run": 3.0,
                "lifetime_epsilon": 10.0,
                "max_delta": 1e-5,
                "require_dp": require_dp,
            },
        },
        "node/policy.yaml",
    )


def _usage(**kw):
    base = {
        "node": "retailer",
        "features": ["age", "region"],
        "label": "churn",
        "dp_enabled": True,
        "epsilon_per_run": 2.0,
        "delta": 1e-6,
        "n_train_rows": 10_000,
        "lifetime_spent": 1.0,
    }
    base.update(kw)
    return JobUsage(**base)


def _ids(findings, severity="ERROR"):
    return {f.rule_id for f in findings if f.severity == severity}


def test_clean_job_has_no_errors_and_records_field_use():
    findings = evaluate_job(_policy(), _usage())
    assert _ids(findings) == set()
    enforce(findings)
    assert {f.field for f in findings if f.rule_id == "FIELD-USE"} == {"age", "region", "churn"}


@pytest.mark.parametrize(
    "usage_kw, policy_kw, rule_id, field",
    [
        ({"features": ["age", "shoe_size"]}, {}, "TASK-COLUMN-MISSING", "shoe_size"),
        ({"features": ["phone"]}, {}, "CS-FEATURE", "phone"),
        ({"label": "cid"}, {}, "CS-FEATURE", "cid"),
        ({"features": ["note"]}, {}, "ROLE-MISMATCH", "note"),
        ({"features": ["cid"]}, {}, "TIER-TRANSFORM", "cid"),
        ({"dp_enabled": False}, {"require_dp": False}, "GS-NO-DP", "age"),
        ({"dp_enabled": False, "features": ["region"]}, {}, "DP-REQUIRED", None),
        ({"epsilon_per_run": 3.5}, {}, "DP-EPS-RUN", None),
        ({"epsilon_per_run": None}, {}, "DP-EPS-RUN", None),
        ({"delta": 1e-4}, {}, "DP-DELTA", None),
        ({"delta": None}, {}, "DP-DELTA", None),
        ({"delta": 1e-5, "n_train_rows": 100_000}, {}, "DP-DELTA-N", None),
        ({"lifetime_spent": 8.5}, {}, "DP-LIFETIME", None),
        (
            {"data_columns": ["cid", "phone", "age", "region", "note", "churn", "iban"]},
            {},
            "UNLISTED-COLUMN",
            "iban",
        ),
        (
            {"data_columns": ["cid", "age", "region", "note", "churn"]},
            {},
            "SCHEMA-MISSING",
            "phone",
        ),
    ],
)
def test_each_rule_fires(usage_kw, policy_kw, rule_id, field):
    findings = evaluate_job(_policy(**policy_kw), _usage(**usage_kw))
    hits = [f for f in findings if f.rule_id == rule_id and f.severity == "ERROR"]
    assert hits, findings
    assert hits[0].field == field
    assert hits[0].node == "retailer"
    with pytest.raises(RuleViolation) as err:
        enforce(findings)
    assert rule_id in str(err.value) and "retailer" in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.findings


def test_delta_n_unknown_rows_is_a_warning():
    findings = evaluate_job(_policy(), _usage(n_train_rows=None))
    assert "DP-DELTA-N" in _ids(findings, "WARN")
    enforce(findings)


def test_policy_missing():
    findings = evaluate_job(None, _usage())
    assert _ids(findings) == {"POLICY-MISSING"}
    with pytest.raises(RuleViolation, match="POLICY-MISSING"):
        enforce(findings)


def test_enforce_lists_fields_and_ignores_warnings():
    enforce([Finding("WARN", "X", "n", None, "w"), Finding("INFO", "Y", "n", "f", "i")])
    with pytest.raises(RuleViolation) as err:
        enforce(
            [
                Finding("ERROR", "CS-FEATURE", "n1", "phone", "m"),
                Finding("ERROR", "GS-NO-DP", "n1", "age", "m"),
            ]
        )
    assert "CS-FEATURE (phone)" in str(err.value) and "GS-NO-DP (age)" in str(err.value)


def test_registry_is_assembled_statically_from_the_defining_modules():
    """RULES is exactly the defining modules' RULE_DEFINITIONS in order, and read-only: no
    import elsewhere can add or replace a rule."""
    assembled = [r for m in DEFINING_MODULES for r in m.RULE_DEFINITIONS]
    assert list(RULES.values()) == assembled
    assert len(RULES) == len(assembled) == 64
    with pytest.raises(TypeError):
        RULES["CS-FEATURE"] = Rule("CS-FEATURE", "ERROR", "dup", "dup", None)  # type: ignore[index]
    assert RULES["CS-FEATURE"].title != "dup"


def test_every_rule_defining_module_is_listed():
    import importlib
    import pkgutil

    import confide.privacy as pkg

    defining = set()
    for info in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"confide.privacy.{info.name}")
        if hasattr(module, "RULE_DEFINITIONS"):
            defining.add(module.__name__)
    assert defining == {m.__name__ for m in DEFINING_MODULES}


def test_registry_refuses_duplicates_and_bad_definitions():
    rule = Rule("CS-FEATURE", "ERROR", "dup", "dup", None)
    with pytest.raises(ValueError, match="CS-FEATURE is defined twice"):
        build_registry([*RULES.values(), rule])
    with pytest.raises(ValueError, match="severity"):
        Rule("TEST-NEW", "FATAL", "t", "r", None)
    with pytest.raises(ValueError, match="scope"):
        Rule("TEST-NEW", "ERROR", "t", "r", None, scope="everywhere")
    assert list(by_id([rule])) == ["CS-FEATURE"]


def test_catalogue_lists_every_rule_with_rationale():
    md = rule_catalogue_document()
    for rid, rule in RULES.items():
        assert f"`{rid}`" in md
        assert rule.rationale
    assert "GDPR art. 9" in md and "PIPL" in md


def test_messages_never_contain_values():
    import dataclasses
    import re

    # the job rules see names and numbers only: no JobUsage field can carry a row value
    assert {f.name: f.type for f in dataclasses.fields(JobUsage)} == {
        "node": "str",
        "features": "list[str]",
        "label": "str",
        "dp_enabled": "bool",
        "epsilon_per_run": "float | None",
        "delta": "float | None",
        "n_train_rows": "int | None",
        "lifetime_spent": "float",
        "data_columns": "list[str] | None",
    }
    policy = _policy()
    findings = evaluate_job(policy, _usage(features=["phone"], lifetime_spent=9.9))
    assert _ids(findings) == {"CS-FEATURE", "TIER-TRANSFORM", "DP-LIFETIME"}
    names = {c.name for c in policy.columns.values()} | {"phone", "churn"}
    for f in findings:  # every quoted token is a column or task name, never anything else
        quoted = re.findall(r"'([^']*)'", f.message)
        assert set(quoted) <= names, (f.rule_id, quoted)
        assert f.field is None or f.field in names
    lifetime = next(f for f in findings if f.rule_id == "DP-LIFETIME")
    assert "9.9" in lifetime.message and "11.9" in lifetime.message  # numbers are echoed


def test_docs_rule_catalogue_is_in_sync():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "privacy.md").read_text(encoding="utf-8")
    missing = [rid for rid in RULES if f"`{rid}`" not in doc]
    assert not missing, (
        "regenerate the catalogue in docs/privacy.md with "
        f"the rule registry (confide.privacy.registry.RULES); missing {missing}"
    )
