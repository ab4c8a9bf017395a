import pytest

from confide.modeling.errors import TaskSpecError
from confide.modeling.task_spec import parse_task_spec

BASE = {
    "name": "t",
    "label": {"name": "y", "positive": 1, "negative": 0},
    "features": [
        {"name": "age", "type": "numeric", "min": 18, "max": 85},
        {"name": "tier", "type": "categorical", "categories": [1, 2, 3]},
    ],
}


def test_parses_and_counts_encoded_width():
    spec = parse_task_spec(BASE)
    assert spec.input_dim == 1 + 3
    assert spec.encoded_names() == ["age", "tier=1", "tier=2", "tier=3"]
    assert spec.label.positive == "1"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"label": {"name": "y", "positive": 1}}, "label needs"),
        ({"label": {"name": "y", "positive": 1, "negative": 1}}, "must differ"),
        ({"features": []}, "non-empty list"),
        ({"extra": 1}, "unknown keys"),
        ({"features": [{"name": "a", "type": "numeric", "min": 5, "max": 1}]}, "min must be below"),
        ({"features": [{"name": "a", "type": "numeric", "min": 0}]}, "'max' must be a number"),
        ({"features": [{"name": "a", "type": "text"}]}, "numeric or categorical"),
        ({"features": [{"name": "a", "type": "categorical", "categories": []}]}, "non-empty"),
        ({"features": [{"name": "y", "type": "numeric", "min": 0, "max": 1}]}, "also a feature"),
        (
            {
                "features": [
                    {"name": "a", "type": "numeric", "min": -2, "max": 1, "transform": "log1p"}
                ]
            },
            "log1p needs",
        ),
    ],
)
def test_malformed_specs_are_refused(patch, message):
    with pytest.raises(TaskSpecError, match=message):
        parse_task_spec({**BASE, **patch})


def test_fingerprint_changes_with_bounds():
    other = {**BASE, "features": [{**BASE["features"][0], "max": 90}, BASE["features"][1]]}
    assert parse_task_spec(BASE).fingerprint != parse_task_spec(other).fingerprint
