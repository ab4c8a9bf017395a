import numpy as np
import pandas as pd
import pytest

from confide.modeling.encoding import encode_features, encode_labels
from confide.modeling.errors import DataError
from confide.modeling.task_spec import parse_task_spec

SPEC = parse_task_spec(
    {
        "name": "t",
        "label": {"name": "y", "positive": 1, "negative": 0},
        "features": [
            {"name": "spend", "type": "numeric", "min": 0, "max": 100, "transform": "log1p"},
            {
                "name": "nps",
                "type": "numeric",
                "min": 0,
                "max": 10,
                "fill": 7,
                "missing_indicator": True,
            },
            {"name": "level", "type": "categorical", "categories": ["a", "b"]},
        ],
    }
)


def frame(**cols):
    base = {
        "spend": ["0", "100", "1000"],
        "nps": ["10", "", "0"],
        "level": ["a", "b", "a"],
        "y": ["1", "0", "1"],
    }
    base.update(cols)
    return pd.DataFrame(base)


def test_encoding_uses_declared_bounds_only():
    x = encode_features(frame(), SPEC, "f.csv")
    assert x.shape == (3, 1 + 2 + 2)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], [0.0, 1.0, 1.0])  # 1000 is clipped to the bound
    np.testing.assert_allclose(x[:, 1], [1.0, 0.7, 0.0])  # missing NPS -> fill 7
    np.testing.assert_allclose(x[:, 2], [0.0, 1.0, 0.0])  # missing indicator
    np.testing.assert_allclose(x[:, 3:], [[1, 0], [0, 1], [1, 0]])


def test_same_rows_encode_identically_in_any_subset():
    full = encode_features(frame(), SPEC, "f.csv")
    part = encode_features(frame().iloc[[2]], SPEC, "f.csv")
    np.testing.assert_array_equal(full[2], part[0])


def test_non_numeric_value_names_file_column_and_rule_not_the_value():
    with pytest.raises(DataError) as err:
        encode_features(frame(spend=["1", "SECRET-VALUE", "3"]), SPEC, "node.csv")
    text = str(err.value)
    assert "node.csv" in text and "'spend'" in text and "numeric feature" in text
    assert "line 3" in text and "SECRET-VALUE" not in text


def test_missing_without_fill_is_refused():
    with pytest.raises(DataError, match="declares no 'fill'"):
        encode_features(frame(spend=["1", "", "3"]), SPEC, "node.csv")


def test_unknown_category_is_refused_unless_ignored():
    with pytest.raises(DataError, match="declared categories"):
        encode_features(frame(level=["a", "zzz", "b"]), SPEC, "node.csv")


def test_labels_accept_equivalent_forms_and_refuse_a_third_value():
    np.testing.assert_array_equal(encode_labels(frame(y=["1", "0.0", "1.0"]), SPEC, "f"), [1, 0, 1])
    with pytest.raises(DataError, match="binary label"):
        encode_labels(frame(y=["1", "0", "2"]), SPEC, "node.csv")
    with pytest.raises(DataError, match="label 'y' is empty"):
        encode_labels(frame(y=["1", "", "0"]), SPEC, "node.csv")
