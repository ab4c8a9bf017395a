"""Display masks that never return the whole value.

Each distinct value is NFKC-normalised and masked once (vectorised Arrow string kernels on the
distinct values), then mapped back. Masks preserve length with ``*``. A value that does not have
the expected shape, or is not longer than the characters a mask keeps, is masked completely.

=================  ===================================================================
``mobile``         valid mainland mobile (separators and +86 removed): ``138****5678``
``national_id``    18-character ID: first and last character kept, ``1****************X``
``bank_card``      12-19 digits (separators removed): first 4 and last 4 kept
``email``          first character of the local part and the domain kept: ``a****@x.com``
``name``           first character (surname) kept: ``张**``
``address``        province/city prefix kept: ``广东省深圳市*********``
``keep:F:L``       first F and last L characters kept
=================  ===================================================================
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .errors import TransformError
from .values import distinct_values, expand

__all__ = ["MASK_CHAR", "mask_series", "mask_strings"]

MASK_CHAR = "*"
_SEP = r"[\s\-]"


def _by_length(arr: pa.Array, fn) -> pa.Array:
    """Apply ``fn(sub_array, length)`` to groups of equal character length; keep order."""
    n = len(arr)
    if n == 0:
        return arr
    lens = pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(lens, kind="stable")
    sl = lens[order]
    starts = np.flatnonzero(np.r_[True, sl[1:] != sl[:-1]])
    ends = np.r_[starts[1:], n]
    pieces = [
        fn(arr.take(pa.array(order[a:b])), int(sl[a]))
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return pa.concat_arrays([p.cast(pa.large_string()) for p in pieces]).take(pa.array(inverse))


def _const(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, type=pa.large_string()), n)


def _stars(arr: pa.Array) -> pa.Array:
    return _by_length(arr, lambda sub, n: _const(MASK_CHAR * n, len(sub)))


def _keep(arr: pa.Array, first: int, last: int) -> pa.Array:
    """Keep ``first``/``last`` characters; fully mask values of length <= first + last."""

    def fn(sub: pa.Array, n: int) -> pa.Array:
        if n <= first + last:
            return _const(MASK_CHAR * n, len(sub))
        return pc.utf8_replace_slice(
            sub, start=first, stop=n - last, replacement=MASK_CHAR * (n - first - last)
        )

    return _by_length(arr, fn)


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, type=pa.large_string())


def _where(cond: pa.Array, a: pa.Array, b: pa.Array) -> pa.Array:
    return pc.if_else(pc.fill_null(cond, False), a, b)


def _shaped(arr: pa.Array, pattern: str, first: int, last: int, clean=None) -> pa.Array:
    """Keep first/last of values matching ``pattern``; fully mask the others.

    ``clean`` (e.g. removing separators) is applied only to values that do not match as given.
    """
    rx = f"^(?:{pattern})$"
    given = arr
    ok = pc.fill_null(pc.match_substring_regex(arr, rx), False)
    if clean is not None and not pc.all(ok).as_py():
        bad = pc.invert(ok)
        arr = pc.replace_with_mask(arr, bad, clean(arr.filter(bad)))
        ok = pc.fill_null(pc.match_substring_regex(arr, rx), False)
    out = _keep(arr, first, last)
    if not pc.all(ok).as_py():  # fully masked as given: a value that cleans to nothing (only
        bad = pc.invert(ok)  # separators) still comes back as stars, never as ''
        out = pc.replace_with_mask(out, bad, _stars(given.filter(bad)))
    return out


def _no_sep(arr: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(arr, _SEP, "")


def _mobile(arr: pa.Array) -> pa.Array:
    def clean(sub: pa.Array) -> pa.Array:
        return pc.replace_substring_regex(_no_sep(sub), r"^\+?86(1[3-9]\d{9})$", r"\1")

    return _shaped(arr, r"1[3-9]\d{9}", 3, 4, clean)


def _national_id(arr: pa.Array) -> pa.Array:
    return _shaped(
        arr, r"\d{17}[\dX]", 1, 1, lambda sub: pc.utf8_upper(pc.utf8_trim_whitespace(sub))
    )


def _bank_card(arr: pa.Array) -> pa.Array:
    return _shaped(arr, r"\d{12,19}", 4, 4, _no_sep)


def _email(arr: pa.Array) -> pa.Array:
    parts = pc.extract_regex(arr, r"^(?P<local>[^@\s]+)@(?P<domain>[^@\s]+\.[^@\s]+)$")
    local = pc.fill_null(pc.struct_field(parts, "local"), "")
    domain = pc.fill_null(pc.struct_field(parts, "domain"), "")
    masked = pc.binary_join_element_wise(
        _keep(local.cast(pa.large_string()), 1, 0), domain.cast(pa.large_string()), _lit("@")
    )
    return _where(pc.is_valid(parts), masked, _stars(arr))


def _name(arr: pa.Array) -> pa.Array:
    return _keep(arr, 1, 0)


_ADDRESS = (
    r"(?s)^(?P<prefix>(?:.{1,7}?(?:省|自治区|特别行政区))?"
    r"(?:.{1,9}?(?:市|自治州|州|盟|地区))?)(?P<rest>.*)$"
)


def _address(arr: pa.Array) -> pa.Array:
    parts = pc.extract_regex(arr, _ADDRESS)
    prefix = pc.fill_null(pc.struct_field(parts, "prefix"), "").cast(pa.large_string())
    rest = pc.fill_null(pc.struct_field(parts, "rest"), "").cast(pa.large_string())
    ok = pc.and_(pc.greater(pc.utf8_length(prefix), 0), pc.greater(pc.utf8_length(rest), 0))
    return _where(ok, pc.binary_join_element_wise(prefix, _stars(rest), _lit("")), _stars(arr))


_MASKS = {
    "mobile": _mobile,
    "national_id": _national_id,
    "bank_card": _bank_card,
    "email": _email,
    "name": _name,
    "address": _address,
}


def mask_strings(values: pa.Array | pd.Series, kind: str, args: tuple = ()) -> pa.Array:
    """Mask canonical non-null string values (an Arrow array or a Series)."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.large_string())
    arr = arr.cast(pa.large_string())
    if kind == "keep":
        first, last = args
        return _keep(arr, int(first), int(last))
    try:
        fn = _MASKS[kind]
    except KeyError:
        raise TransformError(f"unknown mask kind '{kind}' (rule POLICY-VALUE)") from None
    return fn(arr)


def mask_series(s: pd.Series, kind: str, args: tuple = (), column: str | None = None) -> pd.Series:
    """Mask each distinct NFKC-normalised value of ``s`` once; nulls stay null."""
    col = column if column is not None else str(s.name)
    transform = f"mask:{kind}" + (f":{args[0]}:{args[1]}" if kind == "keep" else "")
    d = distinct_values(s, col, transform, normalize=True)
    return expand(d.codes, mask_strings(d.arrow, kind, args), s)
