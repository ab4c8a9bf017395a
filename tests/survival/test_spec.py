"""The survival task spec: the shipped config parses; every malformed spec fails in one line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from confide.modeling.errors import TaskSpecError
from confide.modeling.survival_spec import SurvivalTaskSpec
from confide.modeling.tasks import parse_task

SHIPPED = Path(__file__).parents[2] / "conf" / "task" / "time_to_churn.yaml"


def shipped() -> dict:
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def test_shipped_spec_parses_into_intervals_and_targets():
    spec = parse_task(shipped())
    assert isinstance(spec, SurvivalTaskSpec) and spec.kind == "survival"
    assert spec.horizons == (3.0, 6.0, 12.0)
    assert spec.intervals == (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 18, 24, 30, 36)
    assert spec.output_dim == 14 and spec.edges[0] == 0.0
    assert spec.target_names == ["churn_event", "retention_months"]
    assert (spec.label.positive, spec.label.negative) == ("1", "0")
    assert spec.horizon_index(12.0) == 8


def test_binary_tasks_are_unchanged():
    raw = yaml.safe_load((SHIPPED.parent / "churn.yaml").read_text(encoding="utf-8"))
    spec = parse_task(raw)
    assert spec.kind == "binary" and spec.output_dim == 1 and spec.target_names == ["churned"]
    assert parse_task({**raw, "type": "binary"}).fingerprint == spec.fingerprint


def _features(raw):
    return raw["features"]


CASES = {
    "duration as a feature": (
        lambda r: _features(r).append(
            {"name": "retention_months", "type": "numeric", "min": 0, "max": 36}
        ),
        "SURV-LEAK duration",
    ),
    "event as a feature": (
        lambda r: _features(r).append(
            {"name": "churn_event", "type": "categorical", "categories": [0, 1]}
        ),
        "SURV-LEAK",
    ),
    "horizon not an interval edge": (lambda r: r.update(intervals=[2, 6, 12, 36]), "edge"),
    "intervals not increasing": (lambda r: r.update(intervals=[1, 3, 2, 36]), "increasing"),
    "horizon beyond max": (lambda r: r.update(horizons=[3, 48]), "horizons"),
    "negative duration min": (lambda r: r["duration"].update(min=-1), "0 <= min < max"),
    "non-numeric max": (lambda r: r["duration"].update(max="36"), "'max'"),
    "missing censored value": (lambda r: r["event"].pop("censored"), "event"),
    "event equals censored": (lambda r: r["event"].update(censored=1), "must differ"),
    "duration and event one column": (
        lambda r: r["event"].update(name="retention_months"),
        "different columns",
    ),
    "unknown key": (lambda r: r.update(label={"name": "x"}), "unknown keys"),
    "unknown type": (lambda r: r.update(type="regression"), "binary or survival"),
    "derived names a non-feature": (lambda r: r.update(duration_derived=["nope"]), "non-feature"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_spec_fails_in_one_line(case):
    mutate, phrase = CASES[case]
    raw = copy.deepcopy(shipped())
    mutate(raw)
    with pytest.raises(TaskSpecError) as info:
        parse_task(raw, source="task config")
    message = str(info.value)
    assert "\n" not in message and message.startswith("task config")
    assert phrase in message


def test_control_the_unmutated_spec_parses_and_36_monthly_intervals_fit():
    raw = copy.deepcopy(shipped())
    raw["intervals"] = list(range(1, 37))
    assert parse_task(raw).output_dim == 36  # at most 64 intervals
    raw["duration"]["max"] = 80
    raw["intervals"] = list(range(1, 81))
    with pytest.raises(TaskSpecError, match="at most 64 intervals"):
        parse_task(raw)
