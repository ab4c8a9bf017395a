"""Value canonicalisation shared by masks, pseudonyms and encryption.

Rules (documented in docs/privacy.md):

* Nulls: ``None``, ``NaN``, ``pd.NA``, ``NaT`` and the empty string ``""`` are null and stay
  null in every output (never a constant token).
* Strings are used as given; integers (Python, NumPy or nullable ``Int64``) are cast to their
  canonical decimal string (``7`` -> ``"7"``). Floats, booleans, bytes and every other type are
  refused with :class:`TransformError` naming the column - a CSV id column read as float would
  otherwise turn ``123`` into ``"123.0"``.
* ``normalize=True`` applies Unicode NFKC (full-width ``１２３`` == ``123``; NFC and NFD forms of
  the same text are equal). Used for deterministic transforms (masks, pseudonyms, AES-SIV).

Work is done on each DISTINCT value once (``pd.factorize``) and mapped back by code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import TransformError
from .findings import Rule

__all__ = ["Distinct", "distinct_values", "expand"]


@dataclass(frozen=True)
class Distinct:
    """Codes per row (-1 = null) and the distinct canonical values as an Arrow string array."""

    codes: np.ndarray
    arrow: pa.Array

    @cached_property
    def values(self) -> list[str]:
        """The distinct values as Python strings."""
        return self.arrow.to_pylist()

    @property
    def n_distinct(self) -> int:
        """Number of distinct non-null values."""
        return len(self.arrow)

    @property
    def n_nonnull(self) -> int:
        """Number of non-null rows."""
        return int((self.codes >= 0).sum())


def _is_intlike(dtype) -> bool:
    return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _remap(codes: np.ndarray, sub: np.ndarray) -> np.ndarray:
    return np.where(codes >= 0, sub[np.maximum(codes, 0)], -1)


def distinct_values(s: pd.Series, column: str, transform: str, *, normalize: bool) -> Distinct:
    """Canonicalise ``s`` by the module rules and factorise it."""
    dtype = s.dtype
    if _is_intlike(dtype):
        s = s.astype("Int64").astype("str")
    elif not (
        pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_float_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    ):
        raise TransformError(
            f"column '{column}': transform {transform} needs string values, not {dtype} "
            "(rule VALUE-TYPE); convert the column to text first"
        )
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.intp)
    if isinstance(uniques.dtype, pd.StringDtype):
        arrow = pa.array(uniques.array, type=pa.large_string())
    else:
        objs = list(np.asarray(uniques, dtype=object))
        if objs and pd.api.types.infer_dtype(objs, skipna=False) != "string":
            objs = [_canon_one(v, column, transform) for v in objs]
        arrow = pa.array(objs, type=pa.large_string())
    if normalize and len(arrow):
        codes, arrow = _nfkc(codes, arrow)
    empty = np.flatnonzero(pc.equal(pc.utf8_length(arrow), 0).to_numpy(zero_copy_only=False))
    if len(empty):  # the empty string is null
        keep = np.ones(len(arrow), dtype=bool)
        keep[empty] = False
        sub = np.cumsum(keep) - 1
        sub[empty] = -1
        codes = _remap(codes, sub)
        arrow = arrow.filter(pa.array(keep))
    return Distinct(codes, arrow)


# Characters whose NFKC form is always themselves: ASCII and the CJK unified ideographs.
_NFKC_STABLE = r"[^\x00-\x7F\x{3400}-\x{4DBF}\x{4E00}-\x{9FFF}]"


def _nfkc(codes: np.ndarray, arrow: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """NFKC-normalise distinct values (only those with other characters) and re-factorise."""
    todo = pc.fill_null(pc.match_substring_regex(arrow, _NFKC_STABLE), False)
    if not pc.any(todo).as_py():
        return codes, arrow
    sub = arrow.filter(todo)
    normed_sub = pc.utf8_normalize(sub, "NFKC")
    if pc.all(pc.equal(normed_sub, sub)).as_py():
        return codes, arrow
    normed = pc.replace_with_mask(arrow, todo, normed_sub)
    remap, uniq = pd.factorize(
        pd.Series(normed.to_pandas().array, dtype="str"), use_na_sentinel=True
    )
    return _remap(codes, np.asarray(remap, dtype=np.intp)), pa.array(
        uniq.array, type=pa.large_string()
    )


def _canon_one(v: object, column: str, transform: str) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
        return str(int(v))
    raise TransformError(
        f"column '{column}': transform {transform} accepts strings and integers only, found a "
        f"{type(v).__name__} value (rule VALUE-TYPE); convert the column to text first"
    )


def expand(codes: np.ndarray, outputs: list | pa.Array, like: pd.Series) -> pd.Series:
    """Map per-distinct ``outputs`` back to rows (code -1 -> null) as a ``str`` Series."""
    table = outputs if isinstance(outputs, pa.Array) else pa.array(outputs, type=pa.large_string())
    codes = np.asarray(codes)
    idx = pa.array(codes.astype(np.int64, copy=False), mask=codes < 0)
    out = pd.Series(table.take(idx).to_pandas().array, dtype="str")
    out.index = like.index
    out.name = like.name
    return out


RULE_DEFINITIONS = (
    Rule(
        "VALUE-TYPE",
        "ERROR",
        "Values have the type a transform accepts",
        "Strings and integers only (integers cast to decimal text); floats and other "
        "types are refused, never turned into NaN or '123.0'.",
        None,
        scope="transform",
    ),
)
