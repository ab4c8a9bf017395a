"""Generalisation: numeric bins, age bands, date to month/quarter, city/address to province.

Outputs are text labels; nulls (None/NaN/pd.NA/NaT/"") stay null. Values that cannot be
generalised (non-numeric text for a numeric rule, impossible dates, ages outside 0-150) raise
:class:`TransformError` naming the column, the transform and how many values failed - never the
values themselves. Cities or addresses that do not resolve map to ``"unknown"``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import TransformError
from .findings import Rule
from .geo_cn import CITY_TO_PROVINCE, PROVINCE_ALIASES, UNKNOWN
from .values import distinct_values, expand

__all__ = [
    "AGE_BANDS",
    "UNKNOWN",
    "generalize_series",
    "numeric_bin_labels",
]

AGE_BANDS = (
    (0, "<18"),
    (18, "18-24"),
    (25, "25-34"),
    (35, "35-44"),
    (45, "45-54"),
    (55, "55-64"),
    (65, "65+"),
)
_MAX_AGE = 150


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def numeric_bin_labels(edges: tuple[float, ...]) -> list[str]:
    """Labels ``<e0``, ``[e0,e1)``, ..., ``>=ek`` for bins split at ``edges``."""
    e = [_fmt(x) for x in edges]
    return [f"<{e[0]}"] + [f"[{a},{b})" for a, b in itertools.pairwise(e)] + [f">={e[-1]}"]


def _numbers(s: pd.Series, column: str, transform: str) -> np.ndarray:
    """Float values (NaN for nulls); TransformError counting non-numeric values."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise TransformError(
            f"column '{column}': transform {transform} needs numbers, not "
            "booleans (rule VALUE-TYPE)"
        )
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64").to_numpy(copy=True)
    if isinstance(s.dtype, pd.StringDtype):
        arr = pa.array(s.array, type=pa.large_string())
    else:
        null = s.isna().to_numpy()
        arr = pa.array(s.astype("str").where(~null), type=pa.large_string(), from_pandas=True)
    arr = pc.utf8_trim_whitespace(arr)
    if not pc.all(pc.fill_null(pc.string_is_ascii(arr), True)).as_py():
        arr = pc.utf8_normalize(arr, "NFKC")
    null = pc.fill_null(pc.equal(pc.utf8_length(arr), 0), True).to_numpy(zero_copy_only=False)
    arr = pc.if_else(pa.array(null), pa.scalar(None, type=pa.large_string()), arr)
    try:
        x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).copy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        x = pd.to_numeric(pd.Series(arr.to_pandas().array), errors="coerce").to_numpy(
            dtype="float64", copy=True
        )
    bad = np.isnan(x) & ~null
    if bad.any():
        raise TransformError(
            f"column '{column}': transform {transform}: {int(bad.sum())} "
            "value(s) are not numbers (rule VALUE-TYPE)"
        )
    return x


def _binned(s: pd.Series, x: np.ndarray, edges: tuple[float, ...], labels: list[str]) -> pd.Series:
    codes = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
    codes = np.where(np.isnan(x), -1, codes)
    return expand(codes, labels, s)


def _age_band(s: pd.Series, column: str, transform: str) -> pd.Series:
    x = _numbers(s, column, transform)
    bad = ~np.isnan(x) & ((x < 0) | (x > _MAX_AGE))
    if bad.any():
        raise TransformError(
            f"column '{column}': transform {transform}: {int(bad.sum())} "
            f"value(s) outside 0-{_MAX_AGE} (rule AGE-RANGE)"
        )
    edges = tuple(float(a) for a, _ in AGE_BANDS[1:])
    return _binned(s, x, edges, [label for _, label in AGE_BANDS])


def _dates(s: pd.Series, column: str, transform: str) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """(codes, parsed distinct dates)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        codes, uniq = pd.factorize(s, use_na_sentinel=True)
        return np.asarray(codes), pd.DatetimeIndex(uniq)
    d = distinct_values(s, column, transform, normalize=True)
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(d.arrow), r"[/.]", "-")
    parsed = pd.to_datetime(
        pd.Series(text.to_pandas().array, dtype="str"), format="ISO8601", errors="coerce"
    )
    bad = int(parsed.isna().sum())
    if bad:
        raise TransformError(
            f"column '{column}': transform {transform}: {bad} distinct "
            "value(s) are not valid dates (YYYY-MM-DD, YYYY/MM/DD or ISO 8601) "
            "(rule DATE-FORMAT)"
        )
    return d.codes, pd.DatetimeIndex(parsed)


def _date_label(s: pd.Series, column: str, transform: str, quarter: bool) -> pd.Series:
    codes, dates = _dates(s, column, transform)
    if quarter:
        labels = [f"{y:04d}-Q{q}" for y, q in zip(dates.year, dates.quarter, strict=True)]
    else:
        labels = [f"{y:04d}-{m:02d}" for y, m in zip(dates.year, dates.month, strict=True)]
    return expand(codes, labels, s)


def _city(s: pd.Series, column: str, transform: str) -> pd.Series:
    d = distinct_values(s, column, transform, normalize=True)
    keys = pc.utf8_trim_whitespace(d.arrow).to_pylist()
    return expand(d.codes, [CITY_TO_PROVINCE.get(k, UNKNOWN) for k in keys], s)


_PLACES = {**CITY_TO_PROVINCE, **PROVINCE_ALIASES}


def _prefix_lookup(
    arr: pa.Array, table: dict[str, str], resolved: np.ndarray, out: np.ndarray
) -> None:
    """For unresolved rows, a prefix of ``arr`` found in ``table`` -> ``out`` (in place).

    Shortest prefixes are tried first; this equals longest-prefix matching because no key of
    the table is a prefix of another key that maps to a different province (tested).
    """
    keys = pa.array(list(table), type=pa.large_string())
    vals = np.array(list(table.values()), dtype=object)
    for k in sorted({len(key) for key in table}):
        todo = np.flatnonzero(~resolved)
        if not len(todo):
            return
        prefix = pc.utf8_slice_codeunits(arr.take(pa.array(todo)), 0, k)
        hit = pc.index_in(prefix, value_set=keys).to_numpy(zero_copy_only=False)
        found = ~np.isnan(hit.astype(float))
        rows = todo[found]
        out[rows] = vals[hit[found].astype(np.int64)]
        resolved[rows] = True


def _address(s: pd.Series, column: str, transform: str) -> pd.Series:
    d = distinct_values(s, column, transform, normalize=True)
    arr = pc.utf8_trim_whitespace(d.arrow)
    out = np.full(len(arr), UNKNOWN, dtype=object)
    resolved = np.zeros(len(arr), dtype=bool)
    _prefix_lookup(arr, _PLACES, resolved, out)
    return expand(d.codes, pa.array(out, type=pa.large_string()), s)


def generalize_series(
    s: pd.Series, kind: str, args: tuple = (), column: str | None = None
) -> pd.Series:
    """Apply ``generalize:<kind>`` to ``s``."""
    col = column if column is not None else str(s.name)
    transform = f"generalize:{kind}"
    if kind == "numeric_bins":
        edges = tuple(float(e) for e in args)
        if (
            not edges
            or not all(math.isfinite(e) for e in edges)
            or any(b <= a for a, b in itertools.pairwise(edges))
        ):
            raise TransformError(
                f"column '{col}': numeric_bins edges must be finite and "
                "strictly increasing (rule POLICY-VALUE)"
            )
        return _binned(s, _numbers(s, col, transform), edges, numeric_bin_labels(edges))
    if kind == "age_band":
        return _age_band(s, col, transform)
    if kind in ("date_month", "date_quarter"):
        return _date_label(s, col, transform, quarter=kind == "date_quarter")
    if kind == "city_to_province":
        return _city(s, col, transform)
    if kind == "address_to_province":
        return _address(s, col, transform)
    raise TransformError(f"column '{col}': unknown generalize kind (rule POLICY-VALUE)")


RULE_DEFINITIONS = (
    Rule(
        "AGE-RANGE",
        "ERROR",
        "Ages lie within 0-150",
        "Impossible ages signal a wrong column mapping or corrupt data.",
        None,
        scope="transform",
    ),
    Rule(
        "DATE-FORMAT",
        "ERROR",
        "Dates are real dates",
        "Impossible dates (e.g. 30 February) are refused, never silently dropped.",
        None,
        scope="transform",
    ),
)
