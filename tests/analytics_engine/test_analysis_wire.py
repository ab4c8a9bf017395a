"""Analysis messages on the wire: plain JSON data in a ConfigRecord, checked on arrival."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.wire import (
    AnalysisRequest,
    AnalysisWireError,
    decode_analysis_reply,
    encode_analysis_reply,
)

_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _finite | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    spec=st.dictionaries(st.text(max_size=6), _json, max_size=5),
    step=st.sampled_from(["release", "kmeans"]),
    iteration=st.integers(0, 50),
    centroids=st.none()
    | st.integers(1, 4).flatmap(
        lambda d: st.lists(st.lists(_finite, min_size=d, max_size=d), min_size=1, max_size=5)
    ),
)
def test_request_round_trips_through_config_entries(spec, step, iteration, centroids):
    request = AnalysisRequest(
        "20260101T000000Z-default-customer_profile", step, spec, iteration, centroids
    )
    config = request.to_config()
    assert all(isinstance(v, str | int) for v in config.values())  # ConfigRecord scalars only
    assert AnalysisRequest.from_config(config) == request


def _valid() -> dict:
    return AnalysisRequest("run-1", "kmeans", {"name": "x"}, 2, [[0.0, 1.0]]).to_config()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("step", "train_model", "field 'step'"),
        ("run-id", "../../etc", "field 'run-id'"),
        ("iteration", -1, "field 'iteration'"),
        ("iteration", True, "field 'iteration'"),
        ("spec", "[1, 2]", "field 'spec' must be an object"),
        ("spec", '{"epsilon": NaN}', "not valid finite JSON"),
        ("spec", "{not json", "not valid finite JSON"),
        ("centroids", "[[1.0], [1.0, 2.0]]", "one length per centroid"),
        ("centroids", "[[1e999]]", "not valid finite JSON"),
        ("centroids", "[]", "non-empty list"),
    ],
)
def test_malformed_requests_are_refused_in_one_line(field, value, message):
    config = _valid()
    AnalysisRequest.from_config(config)  # control: the unmodified request parses
    config[field] = value
    with pytest.raises(AnalysisWireError, match=message) as info:
        AnalysisRequest.from_config(config)
    assert "\n" not in str(info.value) and "etc" not in str(info.value)


def test_oversized_json_is_refused_before_parsing():
    config = _valid()
    config["spec"] = json.dumps({"pad": "x" * (4 * 1024 * 1024)})
    with pytest.raises(AnalysisWireError, match="larger than"):
        AnalysisRequest.from_config(config)


def test_reply_round_trip_and_non_finite_release_is_refused():
    release = {"queries": {"spend": {"value": 12.5, "error95": 3.0}}}
    assert decode_analysis_reply(encode_analysis_reply(release)) == release
    with pytest.raises(AnalysisWireError, match="plain finite JSON"):
        encode_analysis_reply({"value": float("nan")})
    with pytest.raises(AnalysisWireError, match="must be an object"):
        decode_analysis_reply({"release": "[1]"})
