import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from confide.privacy import TransformError, mask_series

KINDS = [
    ("mobile", ()),
    ("national_id", ()),
    ("bank_card", ()),
    ("email", ()),
    ("name", ()),
    ("address", ()),
    ("keep", (3, 4)),
    ("keep", (0, 0)),
    ("keep", (2, 0)),
]


@pytest.mark.parametrize(
    "kind, values, expected",
    [
        (
            "mobile",
            ["13800138000", "+86 138-0013-8000", "8613800138000", "１３８００１３８０００"],
            ["138****8000"] * 4,
        ),
        ("national_id", ["11010519491231002X", " 11010519491231002x"], ["1****************X"] * 2),
        (
            "bank_card",
            ["6222020000000000000", "6222 0200 0000 0000"],
            ["6222***********0000", "6222********0000"],
        ),
        ("email", ["alice@example.com", "a@b.co"], ["a****@example.com", "*@b.co"]),
        ("name", ["张三", "张三丰", "John Smith"], ["张*", "张**", "J*********"]),
        (
            "address",
            ["广东省深圳市南山区科技园路1号", "北京市朝阳区建国路88号"],
            ["广东省深圳市*********", "北京市*********"],
        ),
    ],
)
def test_masks(kind, values, expected):
    assert mask_series(pd.Series(values), kind).tolist() == expected


@pytest.mark.parametrize(
    "kind, args, value",
    [
        ("mobile", (), "1380013"),  # shorter than 3 + 4 kept digits
        ("mobile", (), "12345678901"),  # malformed: not a mobile number
        ("national_id", (), "110105"),
        ("bank_card", (), "12345678"),
        ("email", (), "no-at-sign"),
        ("email", (), "@example.com"),
        ("name", (), "张"),
        ("address", (), "某某路1号"),  # no province/city prefix
        ("address", (), "广东省深圳市"),  # prefix would be the whole value
        ("keep", (3, 4), "abcdefg"),  # length == first + last
        ("keep", (3, 4), "ab"),
    ],
)
def test_short_or_malformed_inputs_fully_masked(kind, args, value):
    out = mask_series(pd.Series([value]), kind, args).iloc[0]
    assert set(out) == {"*"}


def test_nulls_stay_null_and_types():
    s = pd.Series(["13800138000", None, np.nan, pd.NA, ""], dtype=object)
    assert mask_series(s, "mobile").isna().tolist() == [False, True, True, True, True]
    assert mask_series(pd.Series([13800138000]), "mobile").tolist() == ["138****8000"]
    with pytest.raises(TransformError, match=r"column 'phone'.*VALUE-TYPE"):
        mask_series(pd.Series([1.38e10]), "mobile", column="phone")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="*"),
            min_size=1,
            max_size=30,
        ),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from(KINDS),
)
@example(["\r"], ("mobile", ()))  # found by a hypothesis run: separators only, cleaned to ''
@example([" -\t"], ("bank_card", ()))
def test_property_masks_never_return_the_whole_value(values, kind_args):
    kind, args = kind_args
    out = mask_series(pd.Series(values, dtype=object), kind, args)
    nfkc = pc.utf8_normalize(pa.array(values), "NFKC").to_pylist()
    for v, m, norm in zip(values, out, nfkc, strict=True):
        if norm == "":
            assert pd.isna(m)
            continue
        assert m != v and m != norm
        assert "*" in m
