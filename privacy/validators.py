"""Vectorised validators for identity data (input: a Series; output: a boolean Series).

All validators NFKC-normalise first (full-width digits count as digits); nulls are False.

* :func:`is_national_id` - GB 11643-1999 18-character resident ID: 17 digits + check
  character, ISO 7064 MOD 11-2 checksum, and a real birth date between 1900-01-01 and today.
* :func:`is_mobile` - mainland mobile number ``1[3-9]`` + 9 digits, optional ``+86``/``86``
  prefix, spaces and hyphens ignored.
* :func:`is_luhn` - 12-19 digit card number passing the Luhn check (spaces/hyphens ignored).
* :func:`is_email` - a pragmatic ``local@domain.tld`` check.

:func:`national_id_check_chars` and :func:`luhn_check_digits` compute the check characters
themselves; the validators above and the synthetic-data generators
(:mod:`confide.simulations.identities`) both use them, so there is one implementation of each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "is_email",
    "is_luhn",
    "is_mobile",
    "is_national_id",
    "luhn_check_digits",
    "national_id_check_chars",
    "normalize_text",
]

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK_TEXT = "10X98765432"
_ID_CHECK = np.frombuffer(_ID_CHECK_TEXT.encode("ascii"), dtype=np.uint8)
_ID_CHECK_CHARS = np.array(list(_ID_CHECK_TEXT))
_SEP = r"[\s\-]"
_MOBILE = r"(?:\+?86)?1[3-9]\d{9}"
_EMAIL = (
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}"
)


def normalize_text(s: pd.Series) -> pd.Series:
    """As a ``str`` Series, NFKC-normalised; non-strings become their ``str`` form."""
    if not pd.api.types.is_string_dtype(s.dtype) or pd.api.types.is_object_dtype(s.dtype):
        s = s.map(lambda v: v if isinstance(v, str) or pd.isna(v) else str(v), na_action="ignore")
    return s.astype("str").str.normalize("NFKC")


def _bool(mask: pd.Series) -> pd.Series:
    return mask.fillna(False).astype(bool)


def _digit_matrix(values: pd.Series, width: int) -> np.ndarray:
    buf = "".join(values.tolist()).encode("ascii")
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(values), width)


def _id_check_index(digits: np.ndarray) -> np.ndarray:
    """Index into ``10X98765432`` of each row of 17 ID digits (ISO 7064 MOD 11-2)."""
    return (np.asarray(digits, dtype=np.int64) * _ID_WEIGHTS).sum(axis=1) % 11


def national_id_check_chars(digits: np.ndarray) -> np.ndarray:
    """The GB 11643 check character (``0``-``9`` or ``X``) of each row of 17 digits."""
    return _ID_CHECK_CHARS[_id_check_index(digits)]


def luhn_check_digits(digits: np.ndarray) -> np.ndarray:
    """The Luhn check digit of each row of payload digits (all rows the same width)."""
    reverse = np.asarray(digits, dtype=np.int64)[:, ::-1]  # rightmost payload digit is doubled
    doubled = reverse[:, 0::2] * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + reverse[:, 1::2].sum(axis=1)
    return (10 - total % 10) % 10


def is_national_id(s: pd.Series, today: pd.Timestamp | None = None) -> pd.Series:
    """18-character resident ID with valid MOD 11-2 checksum and a real birth date."""
    t = normalize_text(s).str.strip().str.upper()
    fmt = _bool(t.str.fullmatch(r"\d{17}[\dX]"))
    out = np.zeros(len(t), dtype=bool)
    cand = t[fmt]
    if len(cand):
        m = _digit_matrix(cand, 18)
        ok = _ID_CHECK[_id_check_index(m[:, :17].astype(np.int64) - 48)] == m[:, 17]
        born = pd.to_datetime(cand.str.slice(6, 14), format="%Y%m%d", errors="coerce")
        limit = pd.Timestamp.today().normalize() if today is None else today
        ok &= (born.notna() & (born >= pd.Timestamp("1900-01-01")) & (born <= limit)).to_numpy()
        out[np.flatnonzero(fmt.to_numpy())] = ok
    return pd.Series(out, index=s.index, name=s.name)


def is_mobile(s: pd.Series) -> pd.Series:
    """Mainland 11-digit mobile number (``+86`` prefix, spaces and hyphens allowed)."""
    t = normalize_text(s).str.replace(_SEP, "", regex=True)
    return _bool(t.str.fullmatch(_MOBILE)).rename(s.name)


def is_luhn(s: pd.Series) -> pd.Series:
    """12-19 digits passing the Luhn checksum (not all zeros)."""
    t = normalize_text(s).str.replace(_SEP, "", regex=True)
    fmt = _bool(t.str.fullmatch(r"\d{12,19}"))
    out = np.zeros(len(t), dtype=bool)
    cand = t[fmt]
    if len(cand):
        m = _digit_matrix(cand.str.zfill(19), 19).astype(np.int64) - 48
        valid = luhn_check_digits(m[:, :18]) == m[:, 18]
        out[np.flatnonzero(fmt.to_numpy())] = valid & (m.sum(axis=1) > 0)
    return pd.Series(out, index=s.index, name=s.name)


def is_email(s: pd.Series) -> pd.Series:
    """Pragmatic ``local@domain.tld`` syntax check."""
    t = normalize_text(s).str.strip()
    return _bool(t.str.fullmatch(_EMAIL)).rename(s.name)
