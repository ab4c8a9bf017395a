"""Task-spec numbers must be finite: NaN fills and infinite bounds are refused at parse time."""

from __future__ import annotations

import pytest

from confide.modeling.errors import TaskSpecError
from confide.modeling.task_spec import parse_task_spec


def _task(**numeric) -> dict:
    feature = {"name": "age", "type": "numeric", "min": 18, "max": 85, **numeric}
    return {
        "name": "t",
        "label": {"name": "churned", "positive": 1, "negative": 0},
        "features": [feature],
    }


def test_control_finite_numbers_parse():
    spec = parse_task_spec(_task(fill=30))
    assert spec.features[0].fill == 30.0 and spec.features[0].max == 85.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fill", float("nan")),
        ("fill", float("inf")),
        ("max", float("inf")),
        ("min", float("-inf")),
        ("max", float("nan")),
        ("max", 10**400),
    ],
    ids=["fill-nan", "fill-inf", "max-inf", "min-minus-inf", "max-nan", "max-400-digits"],
)
def test_non_finite_numbers_are_refused_naming_feature_and_key(key, value):
    with pytest.raises(TaskSpecError) as info:
        parse_task_spec(_task(**{key: value}), source="task config")
    message = str(info.value)
    assert message == (
        f"task config feature 'age': '{key}' must be a finite number "
        "(rule: numeric bounds declared)"
    )
