"""Encode a node's records into model inputs from the shared task spec alone.

Numeric features are clipped to their declared bounds, optionally log1p-transformed and scaled
to [0, 1]; categorical features are one-hot over their declared categories. Nothing here depends
on the data's own statistics, so every node encodes identically.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from confide.modeling.errors import DataError
from confide.modeling.task_spec import CategoricalFeature, NumericFeature, TaskSpec, _label_value

__all__ = ["encode_features", "encode_labels"]


def _row_hint(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    # +2: one for the header line, one because files count rows from 1.
    return f"{len(rows)} row(s), first at line {int(rows[0]) + 2}"


def _missing_mask(values: pd.Series) -> np.ndarray:
    as_str = values.astype("string")
    return (values.isna() | (as_str.str.strip() == "")).to_numpy(dtype=bool, na_value=True)


def _encode_numeric(values: pd.Series, feat: NumericFeature, source: str) -> np.ndarray:
    missing = _missing_mask(values)
    parsed = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(parsed) & ~missing  # inf/-Infinity are refused, never clipped
    if bad.any():
        raise DataError(
            f"{source}: column '{feat.name}' has non-numeric or non-finite values in "
            f"{_row_hint(bad)} (rule: numeric feature)"
        )
    if missing.any():
        if feat.fill is None:
            raise DataError(
                f"{source}: column '{feat.name}' is empty in {_row_hint(missing)} and the task "
                "spec declares no 'fill' (rule: missing values)"
            )
        parsed = np.where(missing, feat.fill, parsed)
    lo, hi = feat.min, feat.max
    clipped = np.clip(parsed, lo, hi)
    if feat.transform == "log1p":
        clipped, lo, hi = np.log1p(clipped), np.log1p(lo), np.log1p(hi)
    scaled = ((clipped - lo) / (hi - lo)).astype(np.float32)
    if feat.missing_indicator:
        return np.column_stack([scaled, missing.astype(np.float32)])
    return scaled[:, None]


def _encode_categorical(values: pd.Series, feat: CategoricalFeature, source: str) -> np.ndarray:
    missing = _missing_mask(values)
    canonical = values.where(~missing).map(_label_value, na_action="ignore")
    codes = pd.Index(feat.categories).get_indexer(canonical.to_numpy(dtype=object))
    # A whitespace-only value is not an empty field: it is an undeclared category.
    blank = (
        missing
        & values.notna().to_numpy(dtype=bool)
        & (values.astype("string") != "").to_numpy(dtype=bool, na_value=False)
    )
    missing = missing & ~blank
    unknown = (codes < 0) & ~missing
    if unknown.any() and feat.unknown == "error":
        raise DataError(
            f"{source}: column '{feat.name}' has values outside the declared categories in "
            f"{_row_hint(unknown)} (rule: declared categories)"
        )
    out = np.zeros((len(values), feat.width), dtype=np.float32)
    known = codes >= 0
    out[np.flatnonzero(known), codes[known]] = 1.0
    return out


def encode_features(frame: pd.DataFrame, spec: TaskSpec, source: str) -> np.ndarray:
    """Return a float32 matrix ``(rows, spec.input_dim)``; columns are named by task features."""
    blocks = []
    for feat in spec.features:
        if feat.name not in frame.columns:
            raise DataError(f"{source}: feature column '{feat.name}' is missing (rule: task spec)")
        column = frame[feat.name]
        if isinstance(feat, NumericFeature):
            blocks.append(_encode_numeric(column, feat, source))
        else:
            blocks.append(_encode_categorical(column, feat, source))
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0), np.float32)


def encode_labels(frame: pd.DataFrame, spec: TaskSpec, source: str) -> np.ndarray:
    """Return 1.0 for the positive class and 0.0 for the negative; anything else is refused."""
    name = spec.label.name
    if name not in frame.columns:
        raise DataError(f"{source}: label column '{name}' is missing (rule: task spec)")
    values = frame[name]
    missing = _missing_mask(values)
    if missing.any():
        raise DataError(f"{source}: label '{name}' is empty in {_row_hint(missing)} (rule: label)")
    canonical = values.map(_label_value).to_numpy(dtype=object)
    positive = canonical == spec.label.positive
    negative = canonical == spec.label.negative
    other = ~(positive | negative)
    if other.any():
        raise DataError(
            f"{source}: label '{name}' has values other than the declared positive and negative "
            f"classes in {_row_hint(other)} (rule: binary label)"
        )
    return positive.astype(np.float32)
