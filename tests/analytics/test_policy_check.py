"""An analysis against a node's policy: core-sensitive and unlisted columns are refused by id."""

from __future__ import annotations

import dataclasses

import pytest

from confide.analytics.policy_check import (
    AnalysisPolicyError,
    check_spec_against_policy,
    require_policy_ok,
)
from confide.analytics.spec import ColumnDecl, load_analysis_spec
from confide.privacy.policy import load_policy
from tests.analytics.helpers import POLICY, builtin_raw, builtin_spec


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICY)


def test_builtin_analysis_passes_the_synthetic_policy(policy):
    assert check_spec_against_policy(builtin_spec(), policy, "retailer") == []
    require_policy_ok(builtin_spec(), policy, "retailer")


def _with(raw_edit) -> object:
    raw = builtin_raw()
    raw_edit(raw)
    return load_analysis_spec(raw, "test")


def _ids(findings) -> list[tuple[str, str]]:
    return sorted((f.rule_id, f.field) for f in findings)


def test_group_by_on_core_sensitive_column_is_refused(policy):
    def edit(raw):
        raw["columns"]["national_id"] = {"categories": ["a", "b"]}
        raw["queries"][1]["group_by"] = ["national_id"]

    findings = check_spec_against_policy(_with(edit), policy, "retailer")
    assert _ids(findings) == [("ANALYSIS-CS-COLUMN", "national_id")]
    assert findings[0].node == "retailer" and "group_by" in findings[0].message


def test_filter_on_core_sensitive_column_is_refused(policy):
    def edit(raw):
        raw["columns"]["email"] = {"categories": ["x"]}
        raw["queries"][2]["where"] = {"email": ["x"]}

    assert _ids(check_spec_against_policy(_with(edit), policy)) == [("ANALYSIS-CS-COLUMN", "email")]


def test_core_sensitive_column_only_in_quality_is_allowed(policy):
    spec = builtin_spec()
    assert "mobile" in spec.columns_used()  # the built-in profile checks mobile's format
    assert check_spec_against_policy(spec, policy) == []


def test_unlisted_column_is_refused(policy):
    def edit(raw):
        raw["columns"]["shoe_size"] = {"min": 30, "max": 50}
        raw["queries"][3]["column"] = "shoe_size"

    findings = check_spec_against_policy(_with(edit), policy)
    assert _ids(findings) == [("ANALYSIS-UNKNOWN-COLUMN", "shoe_size")]
    with pytest.raises(AnalysisPolicyError, match=r"rule ANALYSIS-UNKNOWN-COLUMN"):
        require_policy_ok(_with(edit), policy, "bank")


def test_unlisted_id_column_is_refused(policy):
    def edit(raw):
        raw["unit"]["id_column"] = "member_no"

    assert _ids(check_spec_against_policy(_with(edit), policy)) == [
        ("ANALYSIS-UNKNOWN-COLUMN", "member_no")
    ]


def test_unbounded_use_is_caught_even_when_the_spec_was_built_by_hand(policy):
    spec = builtin_spec()
    columns = dict(spec.columns)
    columns["monetary_12m"] = ColumnDecl("monetary_12m", categories=("a",))
    forged = dataclasses.replace(spec, columns=columns)
    ids = {f.rule_id for f in check_spec_against_policy(forged, policy)}
    assert ids == {"ANALYSIS-UNBOUNDED"}


def test_policy_maps_to_names_resolve(policy):
    raw = policy.columns["monetary_12m"]
    renamed = dataclasses.replace(raw, maps_to="spend")
    cols = {**policy.columns, "monetary_12m": renamed}
    mapped = dataclasses.replace(policy, columns=cols)
    ids = {(f.rule_id, f.field) for f in check_spec_against_policy(builtin_spec(), mapped)}
    assert ("ANALYSIS-UNKNOWN-COLUMN", "monetary_12m") in ids  # control: the spec name is gone
