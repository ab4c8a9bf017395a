"""The survival task spec: duration, event, horizons and the discrete-time intervals.

A survival task (``type: survival``) keeps the features of a binary task and replaces the label
with a duration column (declared bounds), an event column (declared event and censored values)
and the horizons reported everywhere. The model predicts one hazard logit per interval; the
interval upper edges (``intervals``) end at ``duration.max`` and contain every horizon, so the
survival probability at a horizon is exact in the model's time grid.

The event column is the spec's ``label`` (event value positive, censored negative), so the
shared node rules (tiers, label role) apply to it unchanged; the duration column is a second
target, declared in :attr:`SurvivalTaskSpec.target_names`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confide.modeling.errors import TaskSpecError
from confide.modeling.task_spec import LabelSpec, TaskSpec, _label_value, _number, _parse_feature

__all__ = ["DurationSpec", "SurvivalTaskSpec", "parse_survival_spec"]

_SURVIVAL_KEYS = {
    "name",
    "type",
    "description",
    "duration",
    "event",
    "horizons",
    "intervals",
    "features",
    "duration_derived",
}
_RULE = "rule: survival task spec"
_MAX_INTERVALS = 64


@dataclass(frozen=True)
class DurationSpec:
    """The duration column and its declared bounds (same unit as the horizons)."""

    name: str
    min: float
    max: float


@dataclass(frozen=True)
class SurvivalTaskSpec(TaskSpec):
    """A task whose target is (duration, event); ``label`` is the event column."""

    duration: DurationSpec = DurationSpec("duration", 0.0, 1.0)
    horizons: tuple[float, ...] = ()
    intervals: tuple[float, ...] = ()  # upper edges; the first interval starts at duration.min
    duration_derived: tuple[str, ...] = ()  # features declared as functions of the duration

    @property
    def kind(self) -> str:
        return "survival"

    @property
    def output_dim(self) -> int:
        return len(self.intervals)

    @property
    def target_names(self) -> list[str]:
        return [self.label.name, self.duration.name]

    @property
    def edges(self) -> tuple[float, ...]:
        """All interval edges, ``duration.min`` first."""
        return (self.duration.min, *self.intervals)

    def horizon_index(self, horizon: float) -> int:
        """The interval whose upper edge is ``horizon``."""
        return self.intervals.index(horizon)


def _name(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise TaskSpecError(f"{where}: must be a non-empty column name ({_RULE})")
    return raw


def _grid(raw: Any, key: str, source: str, lo: float, hi: float) -> tuple[float, ...]:
    where = f"{source}: '{key}'"
    if not isinstance(raw, list | tuple) or not raw:
        raise TaskSpecError(f"{where} must be a non-empty list of numbers ({_RULE})")
    values = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TaskSpecError(f"{where} must hold numbers only ({_RULE})")
        number = float(value)
        if not math.isfinite(number) or not lo < number <= hi:
            raise TaskSpecError(
                f"{where} values must lie in (duration.min, duration.max] ({_RULE})"
            )
        values.append(number)
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise TaskSpecError(f"{where} must be strictly increasing ({_RULE})")
    return tuple(values)


def parse_survival_spec(raw: Mapping[str, Any], source: str = "task spec") -> SurvivalTaskSpec:
    """Validate a ``type: survival`` task mapping into a :class:`SurvivalTaskSpec`."""
    unknown = set(raw) - _SURVIVAL_KEYS
    if unknown:
        raise TaskSpecError(f"{source}: unknown keys {sorted(unknown)} ({_RULE})")
    duration = raw.get("duration")
    if not isinstance(duration, Mapping) or set(duration) != {"name", "min", "max"}:
        raise TaskSpecError(f"{source}: 'duration' needs exactly name, min and max ({_RULE})")
    where = f"{source} duration"
    lo, hi = _number(duration, "min", where), _number(duration, "max", where)
    if lo < 0 or not lo < hi:
        raise TaskSpecError(f"{where}: need 0 <= min < max ({_RULE})")
    dur = DurationSpec(_name(duration["name"], f"{where}.name"), lo, hi)
    event = raw.get("event")
    if not isinstance(event, Mapping) or set(event) != {"name", "event", "censored"}:
        raise TaskSpecError(f"{source}: 'event' needs exactly name, event and censored ({_RULE})")
    if any(v is None or isinstance(v, Mapping | list) for v in (event["event"], event["censored"])):
        raise TaskSpecError(f"{source}: event and censored must be single values ({_RULE})")
    label = LabelSpec(
        _name(event["name"], f"{source} event.name"),
        _label_value(event["event"]),
        _label_value(event["censored"]),
    )
    if label.positive == label.negative:
        raise TaskSpecError(f"{source}: event and censored values must differ ({_RULE})")
    if label.name == dur.name:
        raise TaskSpecError(f"{source}: duration and event must be different columns ({_RULE})")
    horizons = _grid(raw.get("horizons"), "horizons", source, lo, hi)
    intervals = _grid(raw.get("intervals", list(horizons)), "intervals", source, lo, hi)
    if intervals[-1] != hi:
        intervals = (*intervals, hi)
    if len(intervals) > _MAX_INTERVALS:
        raise TaskSpecError(f"{source}: at most {_MAX_INTERVALS} intervals ({_RULE})")
    if not set(horizons) <= set(intervals):
        raise TaskSpecError(f"{source}: every horizon must be an interval edge ({_RULE})")
    features_raw = raw.get("features")
    if not isinstance(features_raw, list | tuple) or not features_raw:
        raise TaskSpecError(f"{source}: 'features' must be a non-empty list (rule: task spec)")
    features = tuple(_parse_feature(f, source) for f in features_raw)
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise TaskSpecError(f"{source}: duplicate feature names (rule: task spec)")
    if dur.name in names:
        raise TaskSpecError(
            f"{source}: duration '{dur.name}' is also a feature (rule: SURV-LEAK duration)"
        )
    if label.name in names:
        raise TaskSpecError(f"{source}: event '{label.name}' is also a feature (rule: SURV-LEAK)")
    derived_raw = raw.get("duration_derived", [])
    if not isinstance(derived_raw, list | tuple) or not all(
        isinstance(d, str) for d in derived_raw
    ):
        raise TaskSpecError(f"{source}: 'duration_derived' must be a list of names ({_RULE})")
    if not set(derived_raw) <= set(names):
        raise TaskSpecError(f"{source}: 'duration_derived' names a non-feature ({_RULE})")
    return SurvivalTaskSpec(
        str(raw.get("name", "task")),
        label,
        features,
        duration=dur,
        horizons=horizons,
        intervals=intervals,
        duration_derived=tuple(derived_raw),
    )
