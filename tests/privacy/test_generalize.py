import numpy as np
import pandas as pd
import pytest

from confide.privacy import TransformError, generalize_series
from confide.privacy.geo_cn import CITY_TO_PROVINCE, PROVINCE_ALIASES


def test_numeric_bins():
    s = pd.Series(["-1", "5", "100", "499.9", "500", "1e6", None, "", " 20 ", "１２"])
    out = generalize_series(s, "numeric_bins", (0, 100, 500), column="spend")
    assert out.tolist()[:6] == ["<0", "[0,100)", "[100,500)", "[100,500)", ">=500", ">=500"]
    assert out.isna().tolist()[6:8] == [True, True]
    assert out.tolist()[8:] == ["[0,100)", "[0,100)"]
    assert (
        generalize_series(pd.Series([1.5, np.nan]), "numeric_bins", (1.5,)).tolist()[0] == ">=1.5"
    )
    with pytest.raises(TransformError) as err:
        generalize_series(pd.Series(["12", "twelve"]), "numeric_bins", (0, 10), column="spend")
    assert "column 'spend'" in str(err.value) and "twelve" not in str(err.value)


def test_age_band():
    out = generalize_series(pd.Series([5, 17, 18, 24, 25, 64, 65, 120, None]), "age_band")
    assert out.tolist()[:8] == ["<18", "<18", "18-24", "18-24", "25-34", "55-64", "65+", "65+"]
    assert pd.isna(out.iloc[8])
    with pytest.raises(TransformError, match="AGE-RANGE"):
        generalize_series(pd.Series([30, 200]), "age_band", column="age")
    with pytest.raises(TransformError, match="VALUE-TYPE"):
        generalize_series(pd.Series([True]), "age_band", column="age")


def test_dates():
    s = pd.Series(["2024-03-05", "2024/12/31", "2023-02-01 10:00:00", None, ""])
    assert generalize_series(s, "date_quarter").tolist()[:3] == ["2024-Q1", "2024-Q4", "2023-Q1"]
    assert generalize_series(s, "date_month").tolist()[:3] == ["2024-03", "2024-12", "2023-02"]
    dt = pd.Series(pd.to_datetime(["2024-05-01", None]))
    assert generalize_series(dt, "date_month").tolist()[0] == "2024-05"
    for bad in ("2024-02-30", "2023-13-01", "yesterday"):
        with pytest.raises(TransformError, match=r"column 'd'.*DATE-FORMAT"):
            generalize_series(pd.Series([bad]), "date_month", column="d")


def test_city_and_address_to_province():
    cities = pd.Series(["深圳", "深圳市", "北京", "火星城", None, "乌鲁木齐市"])
    assert generalize_series(cities, "city_to_province").tolist() == [
        "广东省",
        "广东省",
        "北京市",
        "unknown",
        np.nan,
        "新疆维吾尔自治区",
    ]
    addr = pd.Series(
        [
            "广东省深圳市南山区",
            "北京市朝阳区",
            "深圳市福田区",
            "内蒙古包头",
            "火星路1号",
            "  上海浦东",
            "广西南宁",
        ]
    )
    assert generalize_series(addr, "address_to_province").tolist() == [
        "广东省",
        "北京市",
        "广东省",
        "内蒙古自治区",
        "unknown",
        "上海市",
        "广西壮族自治区",
    ]


def test_prefix_table_has_no_conflicting_prefixes():
    table = {**CITY_TO_PROVINCE, **PROVINCE_ALIASES}
    for a in table:
        for b in table:
            if a != b and b.startswith(a):
                assert table[a] == table[b], (a, b)
