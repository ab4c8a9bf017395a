"""The shared task spec: label, positive class and declared features.

Every node encodes identically from this spec alone (declared bounds and categories), so no
data-dependent statistics have to leave a node.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from confide.modeling.errors import TaskSpecError

__all__ = [
    "TASK_TYPES",
    "CategoricalFeature",
    "LabelSpec",
    "NumericFeature",
    "TaskSpec",
    "parse_task_spec",
]

_NUMERIC_KEYS = {"name", "type", "min", "max", "transform", "fill", "missing_indicator"}
_CATEGORICAL_KEYS = {"name", "type", "categories", "unknown"}
_TASK_KEYS = {"name", "type", "label", "features", "description"}
#: Task types: ``binary`` (the default) and ``survival`` (see :mod:`.survival_spec`).
TASK_TYPES = ("binary", "survival")


@dataclass(frozen=True)
class NumericFeature:
    """A numeric feature clipped to ``[min, max]``, optionally log1p, scaled to [0, 1]."""

    name: str
    min: float
    max: float
    transform: str = "none"  # "none" | "log1p"
    fill: float | None = None  # value used for missing entries; None means missing is an error
    missing_indicator: bool = False

    @property
    def width(self) -> int:
        return 2 if self.missing_indicator else 1

    def output_names(self) -> list[str]:
        names = [self.name]
        if self.missing_indicator:
            names.append(f"{self.name}__missing")
        return names


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature one-hot encoded over its declared categories."""

    name: str
    categories: tuple[str, ...]
    unknown: str = "error"  # "error" | "ignore" (all-zero row)

    @property
    def width(self) -> int:
        return len(self.categories)

    def output_names(self) -> list[str]:
        return [f"{self.name}={c}" for c in self.categories]


@dataclass(frozen=True)
class LabelSpec:
    """The label column and its two allowed values."""

    name: str
    positive: str
    negative: str


@dataclass(frozen=True)
class TaskSpec:
    """Label plus ordered features; ``fingerprint`` identifies the encoding for saved models."""

    name: str
    label: LabelSpec
    features: tuple[NumericFeature | CategoricalFeature, ...] = field(default_factory=tuple)

    @property
    def input_dim(self) -> int:
        return sum(f.width for f in self.features)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def encoded_names(self) -> list[str]:
        return [n for f in self.features for n in f.output_names()]

    @property
    def kind(self) -> str:
        """The task type (``binary`` here; a survival spec overrides it)."""
        return "binary"

    @property
    def output_dim(self) -> int:
        """Model outputs per row: one logit for a binary task."""
        return 1

    @property
    def target_names(self) -> list[str]:
        """The target columns a node reads besides the features."""
        return [self.label.name]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _label_value(value: Any) -> str:
    """Canonical string form of a label value (1, 1.0 and "1" are the same class)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _number(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskSpecError(f"{where}: '{key}' must be a number (rule: numeric bounds declared)")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise TaskSpecError(
            f"{where}: '{key}' must be a finite number (rule: numeric bounds declared)"
        )
    return number


def _parse_feature(raw: Any, where: str) -> NumericFeature | CategoricalFeature:
    if not isinstance(raw, Mapping) or "name" not in raw or "type" not in raw:
        raise TaskSpecError(f"{where}: each feature needs 'name' and 'type' (rule: task spec)")
    name, kind = str(raw["name"]), raw["type"]
    where = f"{where} feature '{name}'"
    if kind == "numeric":
        unknown = set(raw) - _NUMERIC_KEYS
        if unknown:
            raise TaskSpecError(f"{where}: unknown keys {sorted(unknown)} (rule: task spec)")
        lo, hi = _number(raw, "min", where), _number(raw, "max", where)
        if not lo < hi:
            raise TaskSpecError(f"{where}: min must be below max (rule: numeric bounds)")
        transform = raw.get("transform", "none") or "none"
        if transform not in {"none", "log1p"}:
            raise TaskSpecError(f"{where}: transform must be none or log1p (rule: task spec)")
        if transform == "log1p" and lo <= -1:
            raise TaskSpecError(f"{where}: log1p needs min > -1 (rule: numeric bounds)")
        fill = raw.get("fill")
        if fill is not None:
            fill = _number(raw, "fill", where)
        return NumericFeature(
            name, lo, hi, transform, fill, bool(raw.get("missing_indicator", False))
        )
    if kind == "categorical":
        unknown = set(raw) - _CATEGORICAL_KEYS
        if unknown:
            raise TaskSpecError(f"{where}: unknown keys {sorted(unknown)} (rule: task spec)")
        cats = raw.get("categories")
        if not isinstance(cats, list | tuple) or not cats:
            raise TaskSpecError(f"{where}: 'categories' must be a non-empty list (rule: task spec)")
        cats = tuple(_label_value(c) for c in cats)
        if len(set(cats)) != len(cats):
            raise TaskSpecError(f"{where}: duplicate categories (rule: task spec)")
        on_unknown = raw.get("unknown", "error")
        if on_unknown not in {"error", "ignore"}:
            raise TaskSpecError(f"{where}: unknown must be error or ignore (rule: task spec)")
        return CategoricalFeature(name, cats, on_unknown)
    raise TaskSpecError(f"{where}: type must be numeric or categorical (rule: task spec)")


def parse_task_spec(raw: Mapping[str, Any], source: str = "task spec") -> TaskSpec:
    """Validate a task mapping (from Hydra's ``task`` group) into a :class:`TaskSpec`."""
    if not isinstance(raw, Mapping):
        raise TaskSpecError(f"{source}: must be a mapping (rule: task spec)")
    if raw.get("type", "binary") != "binary":  # other types: confide.modeling.tasks.parse_task
        raise TaskSpecError(f"{source}: type must be binary here (rule: task spec)")
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise TaskSpecError(f"{source}: unknown keys {sorted(unknown)} (rule: task spec)")
    label = raw.get("label")
    if not isinstance(label, Mapping) or not {"name", "positive", "negative"} <= set(label):
        raise TaskSpecError(
            f"{source}: label needs name, positive and negative (rule: binary label declared)"
        )
    label_spec = LabelSpec(
        str(label["name"]), _label_value(label["positive"]), _label_value(label["negative"])
    )
    if label_spec.positive == label_spec.negative:
        raise TaskSpecError(f"{source}: positive and negative label values must differ")
    features_raw = raw.get("features")
    if not isinstance(features_raw, list | tuple) or not features_raw:
        raise TaskSpecError(f"{source}: 'features' must be a non-empty list (rule: task spec)")
    features = tuple(_parse_feature(f, source) for f in features_raw)
    names = [f.name for f in features]
    if len(set(names)) != len(names):
        raise TaskSpecError(f"{source}: duplicate feature names (rule: task spec)")
    if label_spec.name in names:
        raise TaskSpecError(f"{source}: label '{label_spec.name}' is also a feature")
    return TaskSpec(str(raw.get("name", "task")), label_spec, features)
