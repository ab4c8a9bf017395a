"""Tests of the synthetic customer generator: schema, validity, determinism, ground truth."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from confide.privacy.validators import is_luhn, is_national_id
from confide.simulations import identities as ids
from confide.simulations.node_profiles import (
    NodeProfile,
    bank,
    default_federation,
    ecommerce,
    franchise,
    get_profile,
    retailer,
    ten_node_profiles,
)
from confide.simulations.synth import (
    CATEGORIES,
    CHANNELS,
    COLUMNS,
    MEMBER_LEVELS,
    REFERENCE_DATE,
    TRUTH_COLUMNS,
    SyntheticNode,
    generate_customers,
    generate_federation,
    write_federation,
    write_node_csv,
)

SEED = 7
EXPECTED_COLUMNS = [
    "customer_id",
    "name",
    "gender",
    "national_id",
    "mobile",
    "email",
    "address",
    "bank_card",
    "age",
    "province",
    "city",
    "city_tier",
    "member_level",
    "points",
    "registration_channel",
    "tenure_months",
    "recency_days",
    "frequency_12m",
    "monetary_12m",
    "avg_basket_value",
    "category_pref",
    "returns_12m",
    "complaints_12m",
    "app_sessions_30d",
    "nps",
    "discount_share",
    "churned",
    "responded_offer",
    "retention_months",
    "churn_event",
]
STRING_COLUMNS = [
    "customer_id",
    "name",
    "gender",
    "national_id",
    "mobile",
    "email",
    "address",
    "bank_card",
    "province",
    "city",
    "member_level",
    "registration_channel",
    "category_pref",
]
INT_RANGES = {
    "age": (18, 85),
    "city_tier": (1, 4),
    "points": (0, 200_000),
    "tenure_months": (0, 180),
    "recency_days": (0, 365),
    "frequency_12m": (0, 200),
    "returns_12m": (0, 50),
    "complaints_12m": (0, 20),
    "app_sessions_30d": (0, 200),
    "churned": (0, 1),
    "responded_offer": (0, 1),
    "retention_months": (0, 36),
    "churn_event": (0, 1),
}


@pytest.fixture(scope="module")
def federation() -> dict[str, SyntheticNode]:
    return {n.profile.name: n for n in generate_federation(default_federation(), SEED)}


@pytest.fixture(scope="module")
def retail(federation: dict[str, SyntheticNode]) -> pd.DataFrame:
    return federation["retailer"].frame


# ----------------------------------------------------------------------------- schema


def test_columns_exact_and_in_order(federation: dict[str, SyntheticNode]) -> None:
    assert list(COLUMNS) == EXPECTED_COLUMNS
    for node in federation.values():
        assert list(node.frame.columns) == EXPECTED_COLUMNS
        assert list(node.truth.columns) == list(TRUTH_COLUMNS)
        assert node.truth.index.equals(node.frame.index)
        assert not set(TRUTH_COLUMNS) & set(node.frame.columns)


def test_dtypes_and_ranges(retail: pd.DataFrame) -> None:
    for col in STRING_COLUMNS:
        assert pd.api.types.is_string_dtype(retail[col]), col
        assert retail[col].notna().all(), col
    for col, (lo, hi) in INT_RANGES.items():
        assert pd.api.types.is_integer_dtype(retail[col]), col
        assert retail[col].between(lo, hi).all(), col
    assert pd.api.types.is_integer_dtype(retail["nps"])
    assert retail["nps"].dropna().between(0, 10).all()
    for col in ("monetary_12m", "avg_basket_value", "discount_share"):
        assert pd.api.types.is_float_dtype(retail[col]), col
    assert retail["monetary_12m"].between(0, 200_000).all()
    assert (retail["monetary_12m"] == retail["monetary_12m"].round(2)).all()
    assert (retail["avg_basket_value"] >= 0).all()
    assert retail["discount_share"].between(0, 1).all()
    assert (retail["discount_share"] == retail["discount_share"].round(3)).all()
    assert set(retail["gender"]) == {"F", "M"}
    assert set(retail["member_level"]) == set(MEMBER_LEVELS)
    assert set(retail["registration_channel"]) == set(CHANNELS)
    assert set(retail["category_pref"]) == set(CATEGORIES)
    assert set(retail["province"]) <= set(ids.PROVINCES)
    assert set(ids.PROVINCES) == {
        "北京",
        "上海",
        "广东",
        "浙江",
        "江苏",
        "四川",
        "湖北",
        "山东",
        "福建",
        "陕西",
    }


def test_history_is_internally_consistent(retail: pd.DataFrame) -> None:
    none = retail["frequency_12m"] == 0
    assert (retail.loc[none, "monetary_12m"] == 0).all()
    assert (retail.loc[~none, "monetary_12m"] > 0).all()
    expected = (retail["monetary_12m"] / retail["frequency_12m"].clip(lower=1)).round(2)
    assert np.allclose(retail["avg_basket_value"], expected, atol=0.006)
    assert (retail["returns_12m"] <= retail["frequency_12m"]).all()
    assert (retail["tenure_months"] <= (retail["age"] - 18) * 12).all()
    short = retail["tenure_months"] < 11
    limit = (retail.loc[short, "tenure_months"] + 1) * 31
    assert (retail.loc[short, "recency_days"] <= limit).all()
    # Spend drives membership.
    spend = retail.groupby("member_level")["monetary_12m"].median()
    assert list(spend[list(MEMBER_LEVELS)]) == sorted(spend)


def test_city_matches_province_and_tier(retail: pd.DataFrame) -> None:
    by_name = {c.name: c for c in ids.CITIES}
    assert (retail["city"].map(lambda c: by_name[c].province) == retail["province"]).all()
    assert (retail["city"].map(lambda c: by_name[c].tier) == retail["city_tier"]).all()
    assert all(c in a for c, a in zip(retail["city"], retail["address"], strict=True))


# ----------------------------------------------------------------------------- identities


def test_customer_ids_unique_and_node_specific(federation: dict[str, SyntheticNode]) -> None:
    seen: set[str] = set()
    for node in federation.values():
        cid = node.frame["customer_id"]
        assert cid.str.fullmatch(r"C\d{9}").all()
        assert cid.is_unique
        assert not seen & set(cid)
        seen |= set(cid)


def test_national_ids_valid_and_consistent(retail: pd.DataFrame) -> None:
    nid = retail["national_id"].to_numpy(dtype=str)
    assert is_national_id(pd.Series(nid)).all()
    birth = pd.to_datetime(retail["national_id"].str[6:14], format="%Y%m%d")
    ref = pd.Timestamp(REFERENCE_DATE)
    had_birthday = (birth.dt.month < ref.month) | (
        (birth.dt.month == ref.month) & (birth.dt.day <= ref.day)
    )
    age = ref.year - birth.dt.year - (~had_birthday).astype(int)
    assert (age == retail["age"]).all()
    odd = retail["national_id"].str[16].astype(int) % 2 == 1
    assert (odd == (retail["gender"] == "M")).all()
    assert (retail["national_id"].str[:2] == retail["province"].map(ids.PROVINCE_CODES)).all()


def test_cards_mobiles_emails(retail: pd.DataFrame) -> None:
    assert is_luhn(retail["bank_card"]).all()
    assert retail["bank_card"].str.fullmatch(r"62(\d{14}|\d{17})").all()
    assert retail["mobile"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert retail["email"].str.fullmatch(r"[a-z0-9.]+@[a-z0-9]+\.(com|net)").all()
    assert retail["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,4}").all()


def test_nps_missing_about_ten_percent_and_empty_in_csv(
    federation: dict[str, SyntheticNode], tmp_path: Path
) -> None:
    for node in federation.values():
        assert 0.07 < node.frame["nps"].isna().mean() < 0.13
    node = federation["ecommerce"]
    path = write_node_csv(node, tmp_path / "ecommerce.csv")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert (raw["nps"] == "").sum() == node.frame["nps"].isna().sum()
    assert raw.loc[raw["nps"] != "", "nps"].str.fullmatch(r"\d{1,2}").all()


# ----------------------------------------------------------------------------- determinism, IO


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    profile = ecommerce(2_000)
    a, b = generate_customers(profile, 11), generate_customers(profile, 11)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    pa = write_node_csv(a, tmp_path / "a.csv")
    pb = write_node_csv(b, tmp_path / "b.csv")
    assert pa.read_bytes() == pb.read_bytes()
    c = generate_customers(profile, 12)
    assert not c.frame.equals(a.frame)
    assert (c.frame["national_id"] != a.frame["national_id"]).mean() > 0.99
    # Same seed, different node: different records and disjoint ids.
    d = generate_customers(retailer(2_000), 11)
    assert not set(d.frame["customer_id"]) & set(a.frame["customer_id"])


def test_write_node_csv_round_trip_atomic(
    federation: dict[str, SyntheticNode], tmp_path: Path
) -> None:
    node = federation["ecommerce"]
    target = tmp_path / "sub" / "node.csv"
    target.parent.mkdir()
    target.write_text("old content", encoding="utf-8")
    assert write_node_csv(node, target) == target
    assert [p.name for p in target.parent.iterdir()] == ["node.csv"]  # no temp file left
    text = target.read_bytes().decode("utf-8")
    assert text.splitlines()[0] == ",".join(EXPECTED_COLUMNS)
    assert "true_churn_probability" not in text
    back = pd.read_csv(target, dtype={c: str for c in STRING_COLUMNS} | {"nps": "Int64"})
    pd.testing.assert_frame_equal(back, node.frame, check_dtype=False)
    paths = write_federation(federation.values(), tmp_path / "fed")
    assert {p.name for p in paths.values()} == {"retailer.csv", "ecommerce.csv"}


def test_n_rows_override_and_validation() -> None:
    node = generate_customers(bank(), 3, n_rows=500)
    assert len(node.frame) == 500 and node.profile.n_rows == 500
    with pytest.raises(ValueError, match="n_rows"):
        generate_customers(bank(), 3, n_rows=0)
    tiny = generate_customers(franchise(), 3, n_rows=1)
    assert list(tiny.frame.columns) == EXPECTED_COLUMNS


# ----------------------------------------------------------------------------- ground truth


def test_churn_base_rates_and_oracle(federation: dict[str, SyntheticNode]) -> None:
    for node in federation.values():
        churn = node.frame["churned"].mean()
        assert 0.20 <= churn <= 0.35, (node.profile.name, churn)
        assert 0.84 <= node.oracle_auc["churned"] <= 0.91, node.oracle_auc
        assert 0.65 <= node.oracle_auc["responded_offer"] <= 0.85, node.oracle_auc
        assert 0.1 <= node.frame["responded_offer"].mean() <= 0.5
        truth = node.truth
        assert truth.ge(0).all().all() and truth.le(1).all().all()


def test_truth_is_calibrated(federation: dict[str, SyntheticNode]) -> None:
    node = federation["retailer"]
    for label, prob in zip(("churned", "responded_offer"), TRUTH_COLUMNS, strict=True):
        y, p = node.frame[label], node.truth[prob]
        assert abs(y.mean() - p.mean()) < 0.015
        bins = pd.qcut(p, 5, labels=False)
        observed, predicted = y.groupby(bins).mean(), p.groupby(bins).mean()
        assert (observed - predicted).abs().max() < 0.04
        assert observed.is_monotonic_increasing


def _features(f: pd.DataFrame) -> np.ndarray:
    cols = {
        "age": (f["age"] - 40) / 15,
        "tier": f["city_tier"] / 4,
        "nps": f["nps"].astype(float).fillna(7.0) / 10,
        "nps_missing": f["nps"].isna().astype(float),
        "discount_share": f["discount_share"],
        "male": (f["gender"] == "M").astype(float),
    }
    for c in (
        "points",
        "tenure_months",
        "recency_days",
        "frequency_12m",
        "monetary_12m",
        "avg_basket_value",
        "returns_12m",
        "complaints_12m",
        "app_sessions_30d",
    ):
        cols[c] = np.log1p(f[c])
    for col, cats in (
        ("member_level", MEMBER_LEVELS),
        ("registration_channel", CHANNELS),
        ("category_pref", CATEGORIES),
        ("province", ids.PROVINCES),
    ):
        for cat in cats[1:]:
            cols[f"{col}={cat}"] = (f[col] == cat).astype(float)
    return pd.DataFrame(cols).to_numpy(dtype=float)


def test_logistic_regression_learns_but_stays_below_oracle(
    federation: dict[str, SyntheticNode],
) -> None:
    node = federation["retailer"]
    x = _features(node.frame)
    y = node.frame["churned"].to_numpy()
    train = np.arange(len(y)) % 4 != 0
    model = LogisticRegression(max_iter=2000).fit(x[train], y[train])
    auc = roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1])
    oracle = roc_auc_score(y[~train], node.truth["true_churn_probability"][~train])
    assert 0.75 <= auc <= 0.90, auc
    assert auc < oracle


def test_nodes_are_non_iid(federation: dict[str, SyntheticNode]) -> None:
    r, e = federation["retailer"].frame, federation["ecommerce"].frame
    # Churn base rates differ significantly (two-proportion chi-square).
    table = [
        [r["churned"].sum(), (1 - r["churned"]).sum()],
        [e["churned"].sum(), (1 - e["churned"]).sum()],
    ]
    assert chi2_contingency(table).pvalue < 1e-6
    assert e["churned"].mean() > r["churned"].mean() + 0.04
    provinces = pd.crosstab(
        np.r_[np.zeros(len(r)), np.ones(len(e))], np.r_[r["province"], e["province"]]
    )
    assert chi2_contingency(provinces).pvalue < 1e-12
    assert e["age"].mean() < r["age"].mean() - 5
    digital = {
        n: f["registration_channel"].isin(["app", "mini_program"]).mean()
        for n, f in (("r", r), ("e", e))
    }
    assert digital["e"] > digital["r"] + 0.3
    assert len(e) / (len(e) + len(r)) < 0.2


# ----------------------------------------------------------------------------- profiles


def test_profiles_and_federations() -> None:
    fed = default_federation()
    assert [(p.name, p.n_rows) for p in fed] == [("retailer", 20_000), ("ecommerce", 3_600)]
    assert get_profile("bank", 100).n_rows == 100
    with pytest.raises(ValueError, match="unknown node profile"):
        get_profile("insurer")
    with pytest.raises(ValueError, match="province"):
        NodeProfile("x", 10, {"火星": 1.0})
    with pytest.raises(ValueError, match="n_rows"):
        NodeProfile("x", 0, {"北京": 1.0})
    with pytest.raises(ValueError, match="app_affinity"):
        NodeProfile("x", 10, {"北京": 1.0}, app_affinity=1.5)
    with pytest.raises(ValueError, match="weights"):
        NodeProfile("x", 10, {"北京": 0.0})


def test_ten_node_profiles_non_iid() -> None:
    profiles = ten_node_profiles(10_000)
    sizes = [p.n_rows for p in profiles]
    assert len(profiles) == 10 and sum(sizes) == 10_000
    assert min(sizes) / 10_000 <= 0.025 and max(sizes) / 10_000 >= 0.28
    assert len({p.name for p in profiles}) == 10
    assert len({p.seed_offset % 100 for p in profiles}) == 10
    assert all(get_profile(p.name, p.n_rows) == p for p in profiles)
    assert len({p.churn_shift for p in profiles}) >= 8
    assert len({tuple(sorted(p.province_weights.items())) for p in profiles}) == 10
    nodes = generate_federation(profiles, SEED)
    all_ids = pd.concat([n.frame["customer_id"] for n in nodes])
    assert all_ids.is_unique
    rates = [n.frame["churned"].mean() for n in nodes]
    assert max(rates) - min(rates) > 0.1
    assert all(re.fullmatch(r"[a-z_]+", n.profile.name) for n in nodes)
