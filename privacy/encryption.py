"""Field encryption with authenticated modes only.

* Deterministic: AES-SIV (``d1.<key id>.<b64 siv||ciphertext>``). Values are NFKC-normalised
  first, so decryption returns the normalised form. Refused on low-cardinality columns, where
  equal ciphertexts reveal the value distribution (see :func:`check_cardinality`).
* Randomised: AES-256-GCM with a fresh 96-bit nonce from ``os.urandom`` per value
  (``r1.<key id>.<b64 nonce>.<b64 ciphertext||tag>``). Values are encrypted exactly as given.

Associated data binds the scheme, dataset, column and key id, and every subkey is derived per
purpose/dataset/column/key id: a token moved to another column or dataset does not decrypt.
Every decryption failure raises the same :class:`DecryptionError` message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from itertools import repeat

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

from .errors import DecryptionError, TransformError
from .findings import Rule
from .keys import KEY_ID_RE, Keyring
from .tokens import SLICE, concat, slices, tokens_from_blobs, tokens_from_matrices
from .values import distinct_values, expand

__all__ = [
    "DET_PREFIX",
    "MIN_DISTINCT",
    "MIN_DISTINCT_RATIO",
    "NONCE_BYTES",
    "RND_PREFIX",
    "check_cardinality",
    "decrypt_series",
    "encrypt_deterministic_series",
    "encrypt_randomized_series",
    "rotate_series",
]

DET_PREFIX = "d1"
RND_PREFIX = "r1"
NONCE_BYTES = 12
MIN_DISTINCT = 10
MIN_DISTINCT_RATIO = 0.01


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


_UNPADDED_B64 = re.compile(r"[A-Za-z0-9_-]+")


def _unb64(s: str) -> bytes:
    """Strict unpadded urlsafe base64: exact alphabet, no padding, canonical trailing bits."""
    if not _UNPADDED_B64.fullmatch(s) or len(s) % 4 == 1:
        raise ValueError("bad base64")
    raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    if _b64(raw) != s:
        raise ValueError("bad base64")
    return raw


def _siv_ad(dataset: str, column: str, kid: str) -> list[bytes]:
    return [b"confide", DET_PREFIX.encode(), dataset.encode(), column.encode(), kid.encode()]


def _gcm_ad(dataset: str, column: str, kid: str) -> bytes:
    return b"".join(
        len(p).to_bytes(4, "big") + p
        for p in (b"confide", RND_PREFIX.encode(), dataset.encode(), column.encode(), kid.encode())
    )


def _decrypt_error(column: str, source: str) -> DecryptionError:
    return DecryptionError(
        f"{source}: column '{column}': decryption failed (rule DECRYPT): the token is invalid, "
        "truncated or tampered with, or belongs to another key, column or dataset"
    )


def check_cardinality(
    n_distinct: int,
    n_nonnull: int,
    column: str,
    *,
    min_distinct: int = MIN_DISTINCT,
    min_ratio: float = MIN_DISTINCT_RATIO,
) -> None:
    """Refuse deterministic encryption of a low-cardinality column.

    A column is low-cardinality when it has fewer than ``min_distinct`` distinct non-null
    values, or distinct/non-null rows is below ``min_ratio``. Equal plaintexts give equal
    ciphertexts, so such columns leak their value distribution; use encrypt:randomized.
    """
    if n_nonnull == 0:
        return
    if n_distinct < min_distinct or n_distinct / n_nonnull < min_ratio:
        raise TransformError(
            f"column '{column}': encrypt:deterministic refused on a low-cardinality column "
            f"({n_distinct} distinct of {n_nonnull} non-null values; needs >= {min_distinct} "
            f"distinct and a ratio >= {min_ratio:g}) (rule DET-LOW-CARDINALITY); "
            "use encrypt:randomized"
        )


def encrypt_deterministic_series(
    s: pd.Series,
    keyring: Keyring,
    dataset: str,
    column: str,
    *,
    key_id: str | None = None,
    check: bool = True,
    min_distinct: int = MIN_DISTINCT,
    min_ratio: float = MIN_DISTINCT_RATIO,
) -> pd.Series:
    """AES-SIV each distinct NFKC-normalised value once; nulls stay null."""
    d = distinct_values(s, column, "encrypt:deterministic", normalize=True)
    if check:
        check_cardinality(
            len(d.values), d.n_nonnull, column, min_distinct=min_distinct, min_ratio=min_ratio
        )
    kid = keyring.active if key_id is None else key_id
    siv = AESSIV(keyring.subkey("siv", dataset, column, kid))
    ad = _siv_ad(dataset, column, kid)
    prefix = f"{DET_PREFIX}.{kid}."
    pieces = [
        tokens_from_blobs(prefix, [siv.encrypt(v, ad) for v in vals])
        for vals in slices(d.arrow, as_bytes=True)
    ]
    return expand(d.codes, concat(pieces), s)


def _gcm_seal(aead: AESGCM, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise ValueError("AES-GCM nonces must be exactly 96 bits")
    return aead.encrypt(nonce, plaintext, ad)


def encrypt_randomized_series(
    s: pd.Series, keyring: Keyring, dataset: str, column: str, *, key_id: str | None = None
) -> pd.Series:
    """AES-256-GCM each value with a fresh random 96-bit nonce; nulls stay null."""
    d = distinct_values(s, column, "encrypt:randomized", normalize=False)
    kid = keyring.active if key_id is None else key_id
    aead = AESGCM(keyring.subkey("gcm", dataset, column, kid))
    ad = _gcm_ad(dataset, column, kid)
    plen = pc.binary_length(d.arrow).to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.flatnonzero(d.codes >= 0)
    row_codes = d.codes[rows]
    order = np.argsort(plen[row_codes], kind="stable")  # group rows by plaintext length
    sorted_len = plen[row_codes[order]]
    bounds = (
        np.flatnonzero(np.r_[True, sorted_len[1:] != sorted_len[:-1]]).tolist() if len(rows) else []
    )
    prefix = f"{RND_PREFIX}.{kid}."
    chunks = []
    for g0, g1 in zip(bounds, [*bounds[1:], len(rows)][: len(bounds)], strict=True):
        for a in range(g0, g1, SLICE):  # bounded Python-object memory per slice
            b = min(a + SLICE, g1)
            nonces = np.frombuffer(os.urandom(NONCE_BYTES * (b - a)), dtype=np.uint8)
            nonce_list = nonces.view(f"V{NONCE_BYTES}").tolist()  # each exactly 96 bits
            pts = d.arrow.take(pa.array(row_codes[order[a:b]])).cast(pa.large_binary()).to_pylist()
            if len(nonce_list[0]) != NONCE_BYTES:  # all nonces of the view share one width
                raise ValueError("AES-GCM nonces must be exactly 96 bits")
            cts = list(map(aead.encrypt, nonce_list, pts, repeat(ad)))
            ct_m = np.frombuffer(b"".join(cts), dtype=np.uint8).reshape(b - a, -1)
            chunks.append(tokens_from_matrices(prefix, [nonces.reshape(b - a, NONCE_BYTES), ct_m]))
    table = concat(chunks)
    # table[k] belongs to row rows[order[k]]: scatter back through a per-row code.
    codes = np.full(len(d.codes), -1, dtype=np.int64)
    codes[rows[order]] = np.arange(len(rows))
    return expand(codes, table, s)


class _Opener:
    """Decrypts tokens of one column, caching one AEAD object per (scheme, key id)."""

    def __init__(self, keyring: Keyring, dataset: str, column: str, mode: str | None):
        self.keyring, self.dataset, self.column, self.mode = keyring, dataset, column, mode
        self._aeads: dict[tuple[str, str], object] = {}

    def _aead(self, scheme: str, kid: str):
        key = (scheme, kid)
        if key not in self._aeads:
            if not KEY_ID_RE.match(kid) or not self.keyring.has(kid):
                raise ValueError("unknown key id")
            if scheme == DET_PREFIX:
                self._aeads[key] = AESSIV(
                    self.keyring.subkey("siv", self.dataset, self.column, kid)
                )
            else:
                self._aeads[key] = AESGCM(
                    self.keyring.subkey("gcm", self.dataset, self.column, kid)
                )
        return self._aeads[key]

    def open(self, token: str) -> str:
        parts = token.split(".")
        scheme = parts[0]
        if self.mode is not None and scheme != self.mode:
            raise ValueError("scheme")
        if scheme == DET_PREFIX and len(parts) == 3:
            kid = parts[1]
            pt = self._aead(scheme, kid).decrypt(
                _unb64(parts[2]), _siv_ad(self.dataset, self.column, kid)
            )
        elif scheme == RND_PREFIX and len(parts) == 4:
            kid, nonce, ct = parts[1], _unb64(parts[2]), _unb64(parts[3])
            if len(nonce) != NONCE_BYTES or len(ct) < 16:
                raise ValueError("nonce size")
            pt = self._aead(scheme, kid).decrypt(nonce, ct, _gcm_ad(self.dataset, self.column, kid))
        else:
            raise ValueError("format")
        return pt.decode("utf-8")


_MODES = {None: None, "deterministic": DET_PREFIX, "randomized": RND_PREFIX}


def decrypt_series(
    s: pd.Series,
    keyring: Keyring,
    dataset: str,
    column: str,
    *,
    mode: str | None = None,
    source: str = "<data>",
) -> pd.Series:
    """Decrypt d1/r1 tokens (any key id in the keyring); nulls stay null.

    ``mode`` ("deterministic" or "randomized") additionally requires that scheme.
    """
    if mode not in _MODES:
        raise ValueError("mode must be None, 'deterministic' or 'randomized'")
    opener = _Opener(keyring, dataset, column, _MODES[mode])
    try:
        d = distinct_values(s, column, "decrypt", normalize=False)
    except TransformError:
        raise _decrypt_error(column, source) from None
    try:
        plain = concat(
            [
                pa.array([opener.open(t) for t in vals], type=pa.large_string())
                for vals in slices(d.arrow)
            ]
        )
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError, KeyError, TypeError):
        raise _decrypt_error(column, source) from None
    return expand(d.codes, plain, s)


def rotate_series(
    s: pd.Series, keyring: Keyring, dataset: str, column: str, mode: str, *, source: str = "<data>"
) -> pd.Series:
    """Re-encrypt tokens under the active key (old key ids must still be in the keyring)."""
    plain = decrypt_series(s, keyring, dataset, column, mode=mode, source=source)
    if mode == "deterministic":
        return encrypt_deterministic_series(plain, keyring, dataset, column, check=False)
    if mode == "randomized":
        return encrypt_randomized_series(plain, keyring, dataset, column)
    raise ValueError("mode must be 'deterministic' or 'randomized'")


RULE_DEFINITIONS = (
    Rule(
        "DET-LOW-CARDINALITY",
        "ERROR",
        "No deterministic encryption of low-cardinality columns",
        "Equal plaintexts give equal AES-SIV ciphertexts; on few distinct values the "
        "value distribution (and often the values) can be read off.",
        None,
        scope="transform",
    ),
    Rule(
        "DECRYPT",
        "ERROR",
        "Every decryption failure is refused with one opaque error",
        "Distinct errors for wrong key, tampering or a moved token would be an oracle.",
        None,
        scope="transform",
    ),
)
