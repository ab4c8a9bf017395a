import pandas as pd

from confide.privacy import parse_policy, scan_dataframe, scan_file


def _df(n=50):
    return pd.DataFrame(
        {
            "idno": ["11010519491231002X"] * n,
            "contact": [f"138{i:08d}" for i in range(n)],
            "nm": [["张三", "李四", "王小明", "赵六", "钱七"][i % 5] for i in range(n)],
            "addr": [f"广东省深圳市南山区科技路{i}号" for i in range(n)],
            "mail": [f"u{i}@example.com" for i in range(n)],
            "card": ["4111111111111111"] * n,
            "mobile": ["n/a"] * n,
            "spend": [str(i) for i in range(n)],
        }
    )


def test_detects_each_kind_without_policy():
    report = scan_dataframe(_df())
    kinds = {c.column: c.kind for c in report.columns}
    assert kinds == {
        "idno": "national_id",
        "contact": "mobile",
        "nm": "name",
        "addr": "address",
        "mail": "email",
        "card": "bank_card",
        "mobile": None,
        "spend": None,
    }
    warn = {f.field for f in report.findings if f.rule_id == "PII-DETECTED"}
    assert warn == {"idno", "contact", "nm", "addr", "mail", "card"}
    assert any(f.rule_id == "PII-NAME-HINT" and f.field == "mobile" for f in report.findings)
    for f in report.findings:  # never quote values
        assert "138" not in f.message and "张三" not in f.message and "4111" not in f.message


def test_policy_lower_tier_and_unlisted_columns():
    pol = parse_policy(
        {
            "version": 1,
            "dataset": "ds",
            "columns": {
                "idno": {"tier": "core_sensitive", "transform": "drop"},
                "contact": {"tier": "general_sensitive"},
                "nm": {"tier": "non_sensitive"},
                "spend": {"tier": "general_sensitive", "role": "feature"},
                "gone": {"tier": "non_sensitive"},
            },
            "dp": {"max_epsilon_per_run": 1, "lifetime_epsilon": 2, "max_delta": 1e-6},
        },
        "p.yaml",
    )
    report = scan_dataframe(_df(), pol, node="bank")
    by = {(f.rule_id, f.field): f for f in report.findings}
    assert by[("PII-TIER", "contact")].severity == "ERROR"
    assert by[("PII-TIER", "nm")].severity == "ERROR"
    assert by[("PII-DETECTED", "idno")].severity == "INFO"
    assert by[("UNLISTED-COLUMN", "mail")].severity == "ERROR"
    assert "looks like email" in by[("UNLISTED-COLUMN", "mail")].message
    assert by[("UNLISTED-COLUMN", "mobile")].severity == "ERROR"
    assert by[("SCHEMA-MISSING", "gone")].severity == "ERROR"
    assert ("PII-TIER", "spend") not in by
    assert report.has("ERROR")


def test_scan_file_csv_and_parquet(tmp_path):
    df = _df(30)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet", index=False)
    for name in ("d.csv", "d.parquet"):
        r = scan_file(tmp_path / name)
        assert {c.column for c in r.columns if c.kind} == {
            "idno",
            "contact",
            "nm",
            "addr",
            "mail",
            "card",
        }
