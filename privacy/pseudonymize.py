"""Keyed pseudonyms: HMAC-SHA256 under per-column HKDF subkeys.

Token format: ``p1.<key id>.<urlsafe base64 of the first 16 bytes of the HMAC>``. Tokens are
stable across processes for the same key, dataset, column and (NFKC-normalised) value, and
differ across keys, datasets and columns. Pseudonyms are one-way: they cannot be decrypted or
re-keyed without the original values; keep the old key id to keep joins stable
(``key_id=...``).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from cryptography.hazmat.primitives import hashes, hmac

from .keys import Keyring
from .tokens import concat, slices, tokens_from_blobs
from .values import distinct_values, expand

__all__ = ["PSEUDONYM_PREFIX", "pseudonymize_series", "pseudonymize_values"]

PSEUDONYM_PREFIX = "p1"
_TAG_BYTES = 16


def _tags(proto: hmac.HMAC, values: list[bytes]) -> list[bytes]:
    out = []
    for v in values:
        h = proto.copy()
        h.update(v)
        out.append(h.finalize()[:_TAG_BYTES])
    return out


def pseudonymize_values(
    values: list[str] | pa.Array,
    keyring: Keyring,
    dataset: str,
    column: str,
    key_id: str | None = None,
) -> pa.Array:
    """Pseudonyms (an Arrow string array) for canonical, non-null string values."""
    kid = keyring.active if key_id is None else key_id
    proto = hmac.HMAC(keyring.subkey("pseudonym", dataset, column, kid), hashes.SHA256())
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.large_string())
    prefix = f"{PSEUDONYM_PREFIX}.{kid}."
    return concat(
        [tokens_from_blobs(prefix, _tags(proto, vals)) for vals in slices(arr, as_bytes=True)]
    )


def pseudonymize_series(
    s: pd.Series, keyring: Keyring, dataset: str, column: str, key_id: str | None = None
) -> pd.Series:
    """Pseudonymise each distinct (NFKC-normalised) value once; nulls stay null."""
    d = distinct_values(s, column, "pseudonymize", normalize=True)
    return expand(d.codes, pseudonymize_values(d.arrow, keyring, dataset, column, key_id), s)
