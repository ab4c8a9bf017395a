"""The node's release: contribution bound, declared group keys only, parsing, quality counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from confide.analytics.node import release_node
from confide.analytics.prepare import (
    INVALID,
    MISSING,
    OK,
    OUT_OF_BOUNDS,
    AnalysisDataError,
    prepare,
)
from tests.analytics.helpers import builtin_spec, single_query
from tests.analytics.test_privacy_loss import ExactSampler

COLUMNS = {"spend": {"min": 0, "max": 100}, "region": {"categories": ["north", "south"]}}


def _frame(rows: list[tuple[str, object, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["cid", "spend", "region"])


def _sum_spec(k: int = 1):
    q = {"name": "s", "stat": "sum", "column": "spend", "group_by": ["region"], "epsilon": 1.0}
    return single_query(q, COLUMNS, k=k, id_column="cid")


def _values(rel: dict, query: str = "s", comp: str = "sum") -> list[float]:
    return rel["queries"][query]["components"][comp]["values"]


def test_contribution_bound_keeps_the_first_k_rows_in_file_order():
    frame = _frame([("a", 10, "north"), ("b", 1, "south"), ("a", 20, "north"), ("a", 40, "north")])
    assert _values(release_node(_sum_spec(1), frame, "n", sampler=ExactSampler())) == [10, 1]
    assert _values(release_node(_sum_spec(2), frame, "n", sampler=ExactSampler())) == [30, 1]
    assert _values(release_node(_sum_spec(5), frame, "n", sampler=ExactSampler())) == [70, 1]


def test_rows_without_an_id_are_not_used():
    frame = _frame([("", 10, "north"), (None, 20, "north"), ("c", 5, "north")])
    assert _values(release_node(_sum_spec(), frame, "n", sampler=ExactSampler())) == [5, 0]


def test_group_keys_come_only_from_declared_categories():
    frame = _frame([("a", 10, "north"), ("b", 20, "mars"), ("c", 30, "")])
    rel = release_node(_sum_spec(), frame, "n", sampler=ExactSampler())
    assert _values(rel) == [10, 0]  # 'mars' and the missing region go to no group
    assert "mars" not in json.dumps(rel)


def test_values_are_clamped_and_bad_text_is_counted_not_raised():
    frame = _frame([("a", "250", "north"), ("b", "-3", "north"), ("c", "abc", "south")])
    frame.loc[3] = ["d", "", "south"]
    rel = release_node(_sum_spec(), frame, "n", sampler=ExactSampler())
    assert _values(rel) == [100, 0]  # 250 -> 100, -3 -> 0, 'abc' and '' are not summed
    prep = prepare(_sum_spec(), frame, "n")
    assert prep.status["spend"].tolist() == [OUT_OF_BOUNDS, OUT_OF_BOUNDS, INVALID, MISSING]


def test_quality_profile_counts_each_status_and_checks_formats(default_frames):
    spec = builtin_spec()
    frame = default_frames["ecommerce"].iloc[:200].copy()
    frame["age"] = frame["age"].astype(object)
    frame.loc[0, "age"] = "n/a"
    frame.loc[1, "age"] = None
    frame.loc[2, "age"] = 130
    frame.loc[3, "mobile"] = "12345"
    frame.loc[4, "province"] = "火星"
    rel = release_node(spec, frame, "n", sampler=ExactSampler())
    counts = np.array(rel["quality"]["components"]["count"]["values"]).reshape(-1, 4)
    by_col = dict(zip(spec.quality.columns, counts.tolist(), strict=True))
    assert by_col["age"] == [197, 1, 1, 1]  # ok, missing, out_of_bounds, invalid_format
    assert by_col["mobile"] == [199, 0, 0, 1]
    assert by_col["province"] == [199, 0, 1, 0]
    assert rel["quality"]["statuses"] == ["ok", "missing", "out_of_bounds", "invalid_format"]
    assert OK == 0


def test_missing_column_fails_with_one_line():
    frame = _frame([("a", 1, "north")]).drop(columns=["region"])
    with pytest.raises(AnalysisDataError) as info:
        release_node(_sum_spec(), frame, "retailer.csv")
    msg = str(info.value)
    assert msg.startswith("retailer.csv: ") and "'region'" in msg and "\n" not in msg


def test_text_frames_and_numeric_frames_release_the_same(default_frames):
    spec = builtin_spec()
    frame = default_frames["ecommerce"].iloc[:500]
    text = frame.astype(str).replace({"<NA>": ""})
    a = release_node(spec, frame, "n", sampler=ExactSampler())
    b = release_node(spec, text, "n", sampler=ExactSampler())
    assert a["queries"] == b["queries"] and a["rfm"] == b["rfm"]


def test_id_column_never_appears_in_a_release(default_frames):
    frame = default_frames["ecommerce"].iloc[:300]
    rel = json.dumps(release_node(builtin_spec(), frame, "n"), ensure_ascii=False)
    assert not any(cid in rel for cid in frame["customer_id"].tolist())
    assert "customer_id" not in rel


def _release_pair(default_frames):
    from tests.analytics.test_privacy_loss import ExactSampler as Exact

    spec = builtin_spec()
    frame = default_frames["ecommerce"].iloc[:300]
    return spec, {"a": release_node(spec, frame, "a", sampler=Exact())}


@pytest.mark.parametrize(
    "tamper",
    ["short vector", "non-finite value", "zero scale", "missing component", "text value"],
)
def test_coordinator_refuses_a_malformed_release_in_one_line(default_frames, tamper):
    from confide.analytics.combine import combine_releases

    spec, rels = _release_pair(default_frames)
    comp = rels["a"]["queries"]["spend_by_province"]["components"]
    if tamper == "short vector":
        comp["sum"]["values"] = comp["sum"]["values"][:-1]
    elif tamper == "non-finite value":
        comp["sum"]["values"][0] = float("inf")
    elif tamper == "zero scale":
        comp["sum"]["scale"] = 0.0
    elif tamper == "missing component":
        del comp["sum"]
    else:
        comp["sum"]["values"][0] = "1e9"
    with pytest.raises(AnalysisDataError) as info:
        combine_releases(spec, rels)
    msg = str(info.value)
    assert msg.startswith("release of node 'a': field 'queries.spend_by_province.components.sum'")
    assert msg.endswith("(rule ANALYSIS-RELEASE)") and "\n" not in msg


def test_control_the_untampered_release_combines(default_frames):
    from confide.analytics.combine import combine_releases

    spec, rels = _release_pair(default_frames)
    assert len(combine_releases(spec, rels)["queries"]["spend_by_province"]["federated"]) == 10
