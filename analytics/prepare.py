"""A node's rows made ready for DP statistics: the contribution bound, parsing, clamping.

* Contribution bound: rows sharing the unit's id column belong to one customer; only the first
  ``max_rows_per_customer`` of them, in the order the node's file lists them, are used (a
  deterministic rule, so a re-run uses the same rows). Rows without an id cannot be bounded and
  are not used. The id column is read here and nowhere else: no output carries it.
* Parsing: values may be text (as the node's reader yields them) or numbers. Numeric columns are
  parsed; a value outside the declared bounds is clamped to them (and counted out-of-bounds);
  unparseable text is ``invalid_format``; empty text or a null is ``missing``. Categorical
  columns map to their declared categories; a value outside the list belongs to no group (and
  is counted out-of-bounds), so group keys never come from the data. Format columns (quality
  only) are checked with :mod:`confide.privacy.validators`.

Nothing here is released: these arrays stay on the node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from confide.core.errors import ConfideError
from confide.privacy import validators

from .spec import AnalysisSpec, ColumnDecl

__all__ = [
    "INVALID",
    "MISSING",
    "OK",
    "OUT_OF_BOUNDS",
    "STATUS_NAMES",
    "AnalysisDataError",
    "Prepared",
    "numeric_column",
    "prepare",
]

OK, MISSING, OUT_OF_BOUNDS, INVALID = 0, 1, 2, 3
STATUS_NAMES = ("ok", "missing", "out_of_bounds", "invalid_format")

_FORMAT_CHECKS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "mobile": validators.is_mobile,
    "national_id": validators.is_national_id,
    "email": validators.is_email,
    "bank_card": validators.is_luhn,
}


class AnalysisDataError(ConfideError):
    """The node's rows do not fit the analysis (a used column or the id column is absent)."""


@dataclass(frozen=True)
class Prepared:
    """The bounded rows of one node, parsed per declared column (node-local, never released).

    ``numeric[c]``: clamped floats, NaN where missing or invalid; ``codes[c]``: index into the
    declared categories, -1 where missing or undeclared; ``status[c]``: OK, MISSING,
    OUT_OF_BOUNDS or INVALID per row."""

    rows: int
    numeric: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]
    status: dict[str, np.ndarray]


def _missing(s: pd.Series) -> np.ndarray:
    miss = s.isna().to_numpy(dtype=bool, copy=True)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        text = s.astype("string").str.strip()
        miss |= (text == "").fillna(True).to_numpy(dtype=bool)
    return miss


def numeric_column(s: pd.Series, decl: ColumnDecl) -> tuple[np.ndarray, np.ndarray]:
    """Clamped floats (NaN: missing or invalid) and each row's status, for one numeric column."""
    miss = _missing(s)
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        raw = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        raw = pd.to_numeric(s.astype("string").str.strip(), errors="coerce")
        raw = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    status = np.full(len(s), OK, dtype=np.uint8)
    bad = ~miss & ~np.isfinite(raw)
    status[miss] = MISSING
    status[bad] = INVALID
    valid = status == OK
    lo, hi = float(decl.min), float(decl.max)  # type: ignore[arg-type]
    outside = valid & ((raw < lo) | (raw > hi))
    status[outside] = OUT_OF_BOUNDS
    values = np.where(valid | outside, np.clip(np.nan_to_num(raw), lo, hi), np.nan)
    return values, status


def _text(s: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype("Int64").astype("string")
    return s.astype("string").str.strip()


def _categorical(s: pd.Series, decl: ColumnDecl) -> tuple[np.ndarray, np.ndarray]:
    miss = _missing(s)
    codes = pd.Index(list(decl.categories or ())).get_indexer(_text(s).fillna(""))
    codes = np.where(miss, -1, codes).astype(np.int64)
    status = np.where(miss, MISSING, np.where(codes < 0, OUT_OF_BOUNDS, OK)).astype(np.uint8)
    return codes, status


def _format(s: pd.Series, decl: ColumnDecl) -> np.ndarray:
    miss = _missing(s)
    ok = _FORMAT_CHECKS[str(decl.format)](s.reset_index(drop=True)).to_numpy(dtype=bool)
    return np.where(miss, MISSING, np.where(ok, OK, INVALID)).astype(np.uint8)


def prepare(
    spec: AnalysisSpec, frame: pd.DataFrame, source: str, columns: Sequence[str] | None = None
) -> Prepared:
    """Bound each customer's rows and parse every used column, or only ``columns`` (see the
    module docstring).

    Raises :class:`AnalysisDataError` (one line naming ``source``, the column and the rule) when
    the id column or a used column is absent; never for a bad value (values are counted)."""
    used = list(spec.columns_used() if columns is None else columns)
    needed = [spec.unit.id_column, *used]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise AnalysisDataError(
            f"{source}: column(s) {', '.join(repr(c) for c in absent)} used by analysis "
            f"'{spec.name}' are not in the node's data (rule ANALYSIS-UNKNOWN-COLUMN)"
        )
    ids = frame[spec.unit.id_column]
    has_id = ~_missing(ids)
    rank = ids[has_id].groupby(_text(ids[has_id]), sort=False).cumcount().to_numpy()
    keep = np.zeros(len(frame), dtype=bool)
    keep[np.flatnonzero(has_id)] = rank < spec.unit.max_rows_per_customer
    rows = frame.loc[keep, used].reset_index(drop=True)
    numeric, codes, status = {}, {}, {}
    for name in used:
        decl = spec.columns[name]
        if decl.kind == "numeric":
            numeric[name], status[name] = numeric_column(rows[name], decl)
        elif decl.kind == "categorical":
            codes[name], status[name] = _categorical(rows[name], decl)
        else:
            status[name] = _format(rows[name], decl)
    return Prepared(len(rows), numeric, codes, status)
