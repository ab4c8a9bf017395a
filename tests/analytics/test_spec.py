"""The analysis spec: strict one-line validation and a lossless wire round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.analytics.spec import AnalysisSpec, AnalysisSpecError, load_analysis_spec
from confide.core.errors import ConfideError
from tests.analytics.helpers import builtin_raw, builtin_spec


def test_builtin_spec_parts_sum_to_its_epsilon():
    spec = builtin_spec()
    assert spec.epsilon == 3.0
    assert sum(spec.parts().values()) == pytest.approx(3.0, abs=1e-12)
    assert "customer_id" not in spec.columns_used()
    assert set(spec.columns_used()) == set(spec.columns)


def _mutate(path: tuple, value) -> dict:
    raw = builtin_raw()
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


_DELETE = object()

BAD = {
    "unknown top key": (("colour",), 1, "field '(top level)'", "unknown key 'colour'"),
    "unknown query key": (("queries", 0, "groupby"), ["province"], "queries[0]", "unknown key"),
    "unknown stat": (("queries", 0, "stat"), "median", "queries.spend_by_province.stat", "unknown"),
    "bounds inverted": (("columns", "age"), {"min": 90, "max": 18}, "columns.age", "inverted"),
    "bounds empty": (("columns", "age"), {"min": 18, "max": 18}, "columns.age", "inverted"),
    "only min": (("columns", "age"), {"min": 18}, "columns.age", "both min and max"),
    "empty categories": (("columns", "province", "categories"), [], "province", "not be empty"),
    "duplicate categories": (
        ("columns", "city_tier", "categories"),
        [1, 2, 2],
        "city_tier",
        "repeat",
    ),
    "epsilon zero": (("queries", 1, "epsilon"), 0, "customers_by_tier.epsilon", "> 0"),
    "epsilon negative": (("epsilon",), -3.0, "field 'epsilon'", "> 0"),
    "parts do not sum": (("queries", 1, "epsilon"), 0.5, "field 'epsilon'", "sum to 3.25"),
    "group_by undeclared": (("queries", 0, "group_by"), ["city"], "group_by", "not declared"),
    "group_by numeric": (("queries", 0, "group_by"), ["age"], "group_by", "categories"),
    "sum of undeclared": (("queries", 0, "column"), "points", "column", "'points' is not declared"),
    "bins not increasing": (
        ("queries", 4, "bins"),
        [18, 35, 25, 90],
        "age_hist.bins",
        "increasing",
    ),
    "bins outside bounds": (
        ("queries", 4, "bins"),
        [0, 25, 90],
        "age_hist.bins",
        "within the bounds",
    ),
    "k below 2": (("segments", "k"), 1, "segments.k", "between 2"),
    "filter undeclared value": (
        ("queries", 2, "where"),
        {"member_level": ["diamond"]},
        "where",
        "declared",
    ),
    "delta positive": (("delta",), 1e-6, "field 'delta'", "Laplace"),
    "quantile q out of range": (("queries", 5, "q"), [0.5, 1.0], "spend_quartiles.q", "(0, 1)"),
    "missing unit": (("unit",), _DELETE, "field 'unit'", "required"),
    "rows per customer 0": (
        ("unit", "max_rows_per_customer"),
        0,
        "max_rows_per_customer",
        "between 1",
    ),
    "outcome not 0/1": (("segments", "outcome"), "age", "segments.outcome", "min 0, max 1"),
    "quality undeclared": (("quality", "columns"), ["email"], "quality.columns", "not declared"),
    "nan bound": (("columns", "age"), {"min": float("nan"), "max": 1}, "columns.age.min", "finite"),
    "huge integer": (("epsilon",), 10**400, "field 'epsilon'", "finite"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_fails_with_one_line_naming_source_field_rule(case):
    path, value, field, rule = BAD[case]
    with pytest.raises(AnalysisSpecError) as info:
        load_analysis_spec(_mutate(path, value), "conf/analysis/x.yaml")
    msg = str(info.value)
    assert isinstance(info.value, ConfideError)
    assert "\n" not in msg
    assert msg.startswith("conf/analysis/x.yaml: field '")
    assert field in msg and rule in msg, msg
    assert "(rule ANALYSIS-" in msg


def test_control_the_unmutated_spec_loads():
    """Each bad case differs from a spec that loads: the refusals come from the mutation."""
    assert load_analysis_spec(builtin_raw(), "conf/analysis/x.yaml").name == "customer_profile"


def test_undeclared_columns_use_the_unbounded_rule_id():
    with pytest.raises(AnalysisSpecError) as info:
        load_analysis_spec(_mutate(("queries", 0, "column"), "points"), "s")
    assert info.value.rule_id == "ANALYSIS-UNBOUNDED"
    with pytest.raises(AnalysisSpecError) as info:
        load_analysis_spec(_mutate(("columns", "age"), {"min": 9, "max": 1}), "s")
    assert info.value.rule_id == "ANALYSIS-SPEC"


def test_error_never_echoes_raw_values():
    raw = _mutate(("queries", 2, "where"), {"member_level": ["SECRET-VALUE-x"]})
    with pytest.raises(AnalysisSpecError) as info:
        load_analysis_spec(raw, "s")
    assert "SECRET" not in str(info.value)


def test_wire_form_is_plain_json_and_round_trips_the_builtin():
    spec = builtin_spec()
    wire = json.loads(json.dumps(spec.to_wire()))
    assert AnalysisSpec.from_wire(wire, "wire") == spec


def test_from_wire_revalidates():
    wire = builtin_spec().to_wire()
    wire["columns"]["age"] = {"min": 90, "max": 18}
    with pytest.raises(AnalysisSpecError, match="inverted"):
        AnalysisSpec.from_wire(wire, "coordinator message")


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_eps = st.sampled_from([0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.0])


@st.composite
def _specs(draw):
    numeric = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    cat_names = draw(
        st.lists(_names.filter(lambda n: n not in numeric), min_size=1, max_size=3, unique=True)
    )
    columns = {}
    for n in numeric:
        lo = draw(st.integers(-1000, 1000))
        columns[n] = {"min": lo, "max": lo + draw(st.integers(1, 10_000))}
    for n in cat_names:
        columns[n] = {
            "categories": draw(
                st.lists(
                    st.text(min_size=1, max_size=5).filter(str.strip),
                    min_size=1,
                    max_size=5,
                    unique=True,
                )
            )
        }
    queries = []
    for i in range(draw(st.integers(1, 4))):
        stat = draw(st.sampled_from(["count", "sum", "mean", "variance", "histogram", "quantiles"]))
        q = {"name": f"q{i}", "stat": stat, "epsilon": draw(_eps)}
        col = draw(st.sampled_from(numeric))
        if stat != "count":
            q["column"] = col
        if draw(st.booleans()):
            q["group_by"] = [draw(st.sampled_from(cat_names))]
        if draw(st.booleans()):
            c = draw(st.sampled_from(cat_names))
            q["where"] = {c: columns[c]["categories"][:1]}
        if stat == "histogram" or (stat == "quantiles" and draw(st.booleans())):
            lo, hi = columns[col]["min"], columns[col]["max"]
            q["bins"] = [lo, (lo + hi) / 2, hi]
        if stat == "quantiles":
            q["q"] = sorted(draw(st.sets(st.sampled_from([0.1, 0.25, 0.5, 0.9]), min_size=1)))
        queries.append(q)
    raw = {
        "name": draw(_names),
        "unit": {"id_column": "cid", "max_rows_per_customer": draw(st.integers(1, 20))},
        "columns": columns,
        "queries": queries,
    }
    if draw(st.booleans()):
        raw["segments"] = {
            "epsilon": draw(_eps),
            "k": draw(st.integers(2, 6)),
            "iterations": draw(st.integers(1, 5)),
            "features": numeric[:2],
        }
    if draw(st.booleans()):
        raw["quality"] = {"epsilon": draw(_eps), "columns": [numeric[0], cat_names[0]]}
    total = sum(q["epsilon"] for q in queries)
    total += sum(raw[p]["epsilon"] for p in ("segments", "quality") if p in raw)
    raw["epsilon"] = total
    return raw


@settings(max_examples=20, deadline=None)
@given(_specs())
def test_property_wire_round_trip_is_lossless(raw):
    spec = load_analysis_spec(raw, "generated")
    wire = json.loads(json.dumps(spec.to_wire()))
    again = AnalysisSpec.from_wire(wire, "wire")
    assert again == spec
    assert again.to_wire() == spec.to_wire()


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _tampered(draw):
    wire = builtin_spec().to_wire()
    parent, key, node = None, None, wire
    for _ in range(draw(st.integers(1, 4))):
        if isinstance(node, dict) and node:
            child = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            child = draw(st.integers(0, len(node) - 1))
        else:
            break
        parent, key, node = node, child, node[child]
    if parent is not None:
        parent[key] = draw(_junk)
    return wire


@settings(max_examples=60, deadline=None)
@given(_tampered())
def test_property_a_tampered_wire_spec_loads_or_fails_with_one_line(wire):
    """What a node receives is data: any tampering is refused as an AnalysisSpecError (never
    another exception) or yields a spec that re-validates to itself."""
    try:
        spec = AnalysisSpec.from_wire(wire, "coordinator")
    except AnalysisSpecError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("coordinator: field '")
    else:
        assert AnalysisSpec.from_wire(spec.to_wire(), "again") == spec
