"""Canary values in core-sensitive columns appear in no output; bad input fails in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from confide.analytics.combine import combine_releases
from confide.analytics.inprocess import run_segments_in_process
from confide.analytics.kmeans import kmeans_node_step
from confide.analytics.mechanisms import SeededLaplace
from confide.analytics.node import release_node
from confide.analytics.policy_check import AnalysisPolicyError, require_policy_ok
from confide.analytics.spec import AnalysisSpecError, load_analysis_spec
from confide.privacy.policy import load_policy
from tests.analytics.helpers import POLICY, builtin_raw, builtin_spec
from tests.canary import CORE_CANARIES, find_canaries, seed_canaries


@pytest.fixture(scope="module")
def canary_frames(default_frames, tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Each node's rows written to CSV, canaries seeded, read back as text (as a node reads)."""
    out = {}
    for node, frame in default_frames.items():
        csv = tmp_path_factory.mktemp("canary") / f"{node}.csv"
        frame.iloc[:1500].to_csv(csv, index=False)
        seed_canaries(csv, rows=5)
        out[node] = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return out


def _dump(obj: object, path: Path) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def test_canaries_in_core_sensitive_columns_appear_in_no_output(canary_frames, tmp_path):
    spec = builtin_spec()
    sampler = SeededLaplace(1)
    releases = {n: release_node(spec, f, n, sampler=sampler) for n, f in canary_frames.items()}
    steps = {
        n: kmeans_node_step(spec, f, None, 0, sampler=sampler) for n, f in canary_frames.items()
    }
    combined = combine_releases(spec, releases)
    combined["segments"] = run_segments_in_process(spec, canary_frames, sampler=sampler)
    for name, obj in {"releases": releases, "steps": steps, "analysis": combined}.items():
        _dump(obj, tmp_path / f"{name}.json")
    assert find_canaries([tmp_path]) == []


def test_control_the_canary_search_sees_a_leak(canary_frames, tmp_path):
    frame = canary_frames["retailer"]
    leak = {"debug_rows": frame[["customer_id", "national_id"]].head(3).to_dict("records")}
    _dump(leak, tmp_path / "leak.json")
    hits = find_canaries([tmp_path])
    assert any("customer_id" in h for h in hits) and any("national_id" in h for h in hits)
    assert set(CORE_CANARIES) >= {"customer_id", "national_id"}


def test_group_by_a_core_sensitive_column_is_refused_before_any_row_is_read():
    raw = builtin_raw()
    raw["columns"]["national_id"] = {"categories": ["x"]}
    raw["queries"][1]["group_by"] = ["national_id"]
    with pytest.raises(AnalysisPolicyError, match="ANALYSIS-CS-COLUMN"):
        require_policy_ok(load_analysis_spec(raw, "t"), load_policy(POLICY), "retailer")


BAD_INPUT = {
    "unknown column": (
        lambda raw: raw["queries"][0].update(column="shoe_size"),
        "field 'queries.spend_by_province.column': column 'shoe_size' is not declared",
    ),
    "undeclared category": (
        lambda raw: raw["queries"][2].update(where={"member_level": ["diamond"]}),
        "field 'queries.mean_age.where.member_level': filter values must be declared categories",
    ),
    "bounds inverted": (
        lambda raw: raw["columns"].update(age={"min": 90, "max": 18}),
        "field 'columns.age': bounds inverted or empty: min must be below max",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_with_one_clear_line(case):
    edit, expected = BAD_INPUT[case]
    raw = builtin_raw()
    edit(raw)
    with pytest.raises(AnalysisSpecError) as info:
        load_analysis_spec(raw, "conf/analysis/customer_profile.yaml")
    msg = str(info.value)
    assert msg.startswith(f"conf/analysis/customer_profile.yaml: {expected}")
    assert msg.count("\n") == 0 and msg.endswith(")")


def test_unknown_column_in_the_data_fails_with_one_line(default_frames):
    frame = default_frames["ecommerce"].drop(columns=["city_tier"])
    with pytest.raises(Exception) as info:
        release_node(builtin_spec(), frame, "ecommerce.csv")
    assert str(info.value) == (
        "ecommerce.csv: column(s) 'city_tier' used by analysis 'customer_profile' are not in "
        "the node's data (rule ANALYSIS-UNKNOWN-COLUMN)"
    )
