import textwrap

import pytest

from confide.privacy import PolicyError, SchemaError, Tier, dataset_tier, load_policy, parse_policy
from confide.privacy.transform_spec import parse_transform

from .conftest import POLICY_YAML


def _base(**columns):
    cols = columns or {"a": {"tier": "non_sensitive"}}
    return {
        "version": 1,
        "dataset": "ds",
        "columns": cols,
        "dp": {"max_epsilon_per_run": 1.0, "lifetime_epsilon": 5.0, "max_delta": 1e-5},
    }


def test_example_policy_loads(policy):
    assert list(policy.columns) == [
        "customer_id",
        "national_id",
        "mobile",
        "email",
        "bank_card",
        "age",
        "monetary_12m",
        "province",
        "churned",
    ]
    assert policy.tier is Tier.CORE_SENSITIVE
    assert policy.dp.max_delta == 1e-5 and policy.dp.require_dp
    assert policy.columns["mobile"].transform == "mask:mobile"
    assert policy.column_for("spend").name == "monetary_12m"
    assert policy.column_for("age").name == "age"
    assert policy.column_for("nope") is None
    assert [c.name for c in policy.columns_by_role("feature")] == [
        "age",
        "monetary_12m",
        "province",
    ]
    assert "national_id" not in policy.output_columns
    assert len(policy.sha256) == 64


def test_tier_order_and_dataset_tier():
    assert Tier.CORE_SENSITIVE > Tier.GENERAL_SENSITIVE > Tier.NON_SENSITIVE
    assert dataset_tier(["non_sensitive", Tier.GENERAL_SENSITIVE]) is Tier.GENERAL_SENSITIVE
    with pytest.raises(PolicyError):
        dataset_tier(["secret"])


def test_exponent_float_and_canonical_transform(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(
        POLICY_YAML.replace("1.0e-5", "1e-5").replace(
            "province:    {tier: non_sensitive, role: feature}",
            "province:    {tier: non_sensitive, role: feature, "
            'transform: "generalize:numeric_bins:0, 10.0,100"}',
        ),
        encoding="utf-8",
    )
    pol = load_policy(p)
    assert pol.dp.max_delta == 1e-5
    assert pol.columns["province"].transform == "generalize:numeric_bins:0,10,100"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("", "empty (rule POLICY-SYNTAX)"),
        ("   \n# only a comment\n", "empty (rule POLICY-SYNTAX)"),
        ("version: 1\ncolumns: [a, b\n", "malformed YAML at line"),
        ("version: 1\nversion: 1\n", "duplicate key"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("a: b: c\n", "malformed YAML"),
        ("just a string\n", "must be a YAML mapping"),
    ],
)
def test_malformed_files(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_policy(p)
    assert needle in str(err.value) and str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_and_non_utf8_file(tmp_path):
    with pytest.raises(PolicyError, match=r"not found .*POLICY-MISSING"):
        load_policy(tmp_path / "absent.yaml")
    p = tmp_path / "latin1.yaml"
    p.write_bytes(b"version: 1\ndataset: \xe9\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(p)


def _col(**kw):
    return _base(c=kw)


@pytest.mark.parametrize(
    "mapping, needle",
    [
        ({**_base(), "extra": 1}, "unknown key(s) 'extra' (rule POLICY-UNKNOWN-KEY)"),
        ({k: v for k, v in _base().items() if k != "dp"}, "field 'dp' is required"),
        ({k: v for k, v in _base().items() if k != "columns"}, "field 'columns' is required"),
        ({**_base(), "version": 2}, "field 'version' must be 1"),
        ({**_base(), "version": True}, "field 'version' must be 1"),
        ({**_base(), "dataset": ""}, "field 'dataset' must be a non-empty string"),
        ({**_base(), "unknown_columns": "allow"}, "field 'unknown_columns' must be 'refuse'"),
        ({**_base(), "columns": {}}, "field 'columns' must be a non-empty mapping"),
        ({**_base(), "columns": {1: {"tier": "non_sensitive"}}}, "column names must be"),
        (_col(), "field 'tier' is required"),
        ({**_base(), "columns": {"c": "core_sensitive"}}, "column 'c': must be a mapping"),
        (_col(tier="secret"), "column 'c': unknown tier"),
        (_col(tier="non_sensitive", role="target"), "column 'c': unknown role"),
        (_col(tier="non_sensitive", transform="hash"), "column 'c': field 'transform': unknown"),
        (_col(tier="non_sensitive", transform="mask:iban"), "unknown mask kind"),
        (_col(tier="non_sensitive", transform="mask:keep:2"), "mask:keep needs two"),
        (_col(tier="non_sensitive", transform="mask:keep:99:1"), "at most 64"),
        (_col(tier="non_sensitive", transform="mask:mobile:3"), "takes no arguments"),
        (_col(tier="non_sensitive", transform="generalize:zip"), "unknown generalize kind"),
        (_col(tier="non_sensitive", transform="generalize:age_band:5"), "takes no arguments"),
        (_col(tier="non_sensitive", transform="generalize:numeric_bins"), "needs comma-separated"),
        (_col(tier="non_sensitive", transform="generalize:numeric_bins:1,x"), "must be numbers"),
        (
            _col(tier="non_sensitive", transform="generalize:numeric_bins:5,1"),
            "strictly increasing",
        ),
        (_col(tier="non_sensitive", transform="generalize:numeric_bins:1,inf"), "finite"),
        (_col(tier="non_sensitive", transform="encrypt:aes"), "unknown transform"),
        (_col(tier="non_sensitive", transform=""), "non-empty string"),
        (_col(tier="non_sensitive", maps_to=""), "field 'maps_to' must be"),
        (_col(tier="non_sensitive", colour="red"), "unknown key(s) 'colour'"),
        (
            _col(tier="core_sensitive", role="feature", transform="generalize:age_band"),
            "POLICY-CS-ROLE",
        ),
        (
            _col(tier="core_sensitive", role="label", transform="generalize:age_band"),
            "POLICY-CS-ROLE",
        ),
        (_col(tier="core_sensitive"), "POLICY-CS-KEEP"),
        (
            _col(tier="general_sensitive", role="feature", transform="pseudonymize"),
            "POLICY-ROLE-TRANSFORM",
        ),
        (_col(tier="non_sensitive", role="label", transform="mask:name"), "POLICY-ROLE-TRANSFORM"),
        (
            _col(tier="core_sensitive", role="id", transform="encrypt:randomized"),
            "POLICY-ID-TRANSFORM",
        ),
        (_col(tier="core_sensitive", role="id", transform="keep"), "POLICY-ID-TRANSFORM"),
        (
            {**_base(a={"tier": "non_sensitive"}, b={"tier": "non_sensitive", "maps_to": "a"})},
            "POLICY-MAPS-TO",
        ),
        ({**_base(), "dp": "strict"}, "field 'dp' must be a mapping"),
        (
            {**_base(), "dp": {"max_epsilon_per_run": 1, "lifetime_epsilon": 5}},
            "field 'dp.max_delta' is required",
        ),
        (
            {**_base(), "dp": {"max_epsilon_per_run": 0, "lifetime_epsilon": 5, "max_delta": 1e-5}},
            "dp.max_epsilon_per_run' must be a positive",
        ),
        (
            {
                **_base(),
                "dp": {"max_epsilon_per_run": "3", "lifetime_epsilon": 5, "max_delta": 1e-5},
            },
            "dp.max_epsilon_per_run' must be a positive",
        ),
        (
            {
                **_base(),
                "dp": {"max_epsilon_per_run": True, "lifetime_epsilon": 5, "max_delta": 1e-5},
            },
            "dp.max_epsilon_per_run' must be a positive",
        ),
        (
            {
                **_base(),
                "dp": {"max_epsilon_per_run": 1, "lifetime_epsilon": -5, "max_delta": 1e-5},
            },
            "dp.lifetime_epsilon' must be a positive",
        ),
        (
            {**_base(), "dp": {"max_epsilon_per_run": 1, "lifetime_epsilon": 5, "max_delta": 1.0}},
            "dp.max_delta' must be below 1",
        ),
        (
            {
                **_base(),
                "dp": {
                    "max_epsilon_per_run": 1,
                    "lifetime_epsilon": 5,
                    "max_delta": 1e-5,
                    "require_dp": "yes please",
                },
            },
            "require_dp' must be true or false",
        ),
        (
            {
                **_base(),
                "dp": {
                    "max_epsilon_per_run": 1,
                    "lifetime_epsilon": 5,
                    "max_delta": 1e-5,
                    "budget": 3,
                },
            },
            "dp: unknown key(s) 'budget'",
        ),
        (
            {**_base(), "dp": {"max_epsilon_per_run": 9, "lifetime_epsilon": 5, "max_delta": 1e-5}},
            "POLICY-DP-LIMITS",
        ),
    ],
)
def test_every_policy_error_path(mapping, needle):
    with pytest.raises(PolicyError) as err:
        parse_policy(mapping, "node-a/policy.yaml")
    msg = str(err.value)
    assert needle in msg, msg
    assert msg.startswith("node-a/policy.yaml: ")
    assert "\n" not in msg


def test_several_column_errors_reported_in_one_line():
    mapping = _base(
        a={"tier": "core_sensitive"},
        b={"tier": "core_sensitive", "role": "feature", "transform": "drop"},
    )
    with pytest.raises(PolicyError) as err:
        parse_policy(mapping, "p.yaml")
    msg = str(err.value)
    assert "column 'a'" in msg and "column 'b'" in msg and "POLICY-CS-ROLE" in msg
    assert "POLICY-ROLE-TRANSFORM" in msg


def test_valid_combinations_accepted():
    pol = parse_policy(
        _base(
            a={"tier": "non_sensitive", "role": "id"},
            b={"tier": "core_sensitive", "role": "id", "transform": "encrypt:deterministic"},
            c={"tier": "core_sensitive", "transform": "generalize:address_to_province"},
            d={"tier": "general_sensitive", "role": "feature", "transform": "generalize:age_band"},
            e={"tier": "core_sensitive", "transform": "mask:keep:0:4"},
        ),
        "p.yaml",
    )
    assert pol.columns["e"].spec.args == (0, 4)
    assert pol.columns["a"].role == "id"


def test_check_columns_both_directions(policy):
    cols = list(policy.columns)
    policy.check_columns(cols, "data.csv")
    with pytest.raises(SchemaError) as err:
        policy.check_columns([*cols[1:], "shoe_size", "iban"], "data.csv")
    msg = str(err.value)
    assert msg.startswith("data.csv: ")
    assert (
        f"column 'shoe_size' is not listed in policy {policy.source} (rule: unknown_columns=refuse)"
    ) in msg
    assert "column 'iban' is not listed" in msg
    assert (
        f"column 'customer_id' listed in policy {policy.source} is missing from the data "
        "(rule: schema)"
    ) in msg
    assert "\n" not in msg
    with pytest.raises(SchemaError, match="appears more than once"):
        policy.check_columns([*cols, "age"], "data.csv")


def test_columns_by_role_unknown(policy):
    with pytest.raises(PolicyError):
        policy.columns_by_role("target")


def test_transform_canonical_roundtrip():
    for t in [
        "keep",
        "drop",
        "pseudonymize",
        "encrypt:deterministic",
        "encrypt:randomized",
        "mask:mobile",
        "mask:keep:3:4",
        "generalize:numeric_bins:0,1.5,100",
        "generalize:date_quarter",
    ]:
        assert parse_transform(t).canonical == t


def test_yaml_policy_text_is_strict(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(
        textwrap.dedent("""\
        version: 1
        dataset: ds
        columns:
          a: {tier: non_sensitive, tranform: drop}
        dp: {max_epsilon_per_run: 1, lifetime_epsilon: 2, max_delta: 1.0e-6}
    """),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="'tranform'"):
        load_policy(p)
