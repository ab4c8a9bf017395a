"""The group behind :mod:`confide.privacy.psi`: the prime-order subgroup of Curve25519, x-only.

Private helper. Elements are 32-byte little-endian Montgomery u-coordinates of points in the
order-l subgroup of Curve25519 (l = 2^252 + 27742317777372353535851937790883648493).

- Hash to the group: ``SHA-512(prefix || id)[:32]`` goes through Elligator 2 onto Ed25519 with
  cofactor clearing (libsodium's ``crypto_core_ed25519_from_uniform``, whose points lie in the
  main subgroup), then to the Montgomery u = (1 + y) / (1 - y) with one batched field
  inversion per chunk (Montgomery's trick). Every hashed element is therefore on the curve, never
  on its twist, so an element does not reveal which of the two its ID hashed to.
- Exponentiation: X25519 (libsodium's ``crypto_scalarmult``). It clamps the secret (a multiple
  of 8, which also clears any small-order component of a hostile input) and it is twist-secure,
  so an input off the subgroup cannot reveal the secret; small-order inputs are refused.

The functions here are module-level so that worker processes can run them on chunks.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys

import nacl.bindings as _sodium
import nacl.exceptions
import numpy as np

__all__ = [
    "BATCH",
    "DOMAIN",
    "ELEMENT_SIZE",
    "BadElement",
    "blind_chunk",
    "hash_prefix",
    "hash_to_group",
    "malformed_count",
    "random_elements",
    "reblind_chunk",
    "serve",
]

ELEMENT_SIZE = 32
DOMAIN = b"confide/psi/v1/curve25519-elligator2-x25519"
_P = 2**255 - 19
BATCH = 8192  # elements per batch inside a chunk
_Y_MASK = (1 << 255) - 1


class BadElement(ValueError):
    """An input element the group refuses (small order)."""


def hash_prefix(run_id: str) -> bytes:
    """The domain-separated, run-bound prefix of every hashed ID (length-prefixed run id)."""
    rid = run_id.encode("utf-8")
    return DOMAIN + b"\x00" + len(rid).to_bytes(4, "big") + rid


def hash_to_group(prefix: bytes, ids: list[str]) -> list[bytes]:
    """H(id) for each normalised ID: a u-coordinate in the prime-order subgroup."""
    sha512, from_uniform = hashlib.sha512, _sodium.crypto_core_ed25519_from_uniform
    ys = [
        int.from_bytes(from_uniform(sha512(prefix + i.encode("utf-8")).digest()[:32]), "little")
        & _Y_MASK
        for i in ids
    ]
    return _edwards_y_to_u(ys)


def _edwards_y_to_u(ys: list[int]) -> list[bytes]:
    """u = (1 + y) / (1 - y) mod p for every y, with a single inversion (Montgomery's trick)."""
    p, n = _P, len(ys)
    if n == 0:
        return []
    prefix = [0] * n
    acc = 1
    for k, y in enumerate(ys):
        acc = acc * (1 - y) % p
        prefix[k] = acc
    if acc == 0:  # y == 1 is the neutral element; Elligator 2 reaches it with negligible odds
        raise BadElement("the hash reached the neutral element")
    inv = pow(acc, p - 2, p)
    out = [b""] * n
    for k in range(n - 1, -1, -1):
        y = ys[k]
        den_inv = inv * prefix[k - 1] % p if k else inv
        inv = inv * (1 - y) % p
        out[k] = ((1 + y) * den_inv % p).to_bytes(ELEMENT_SIZE, "little")
    return out


def _mult(secret: bytes, elements: list[bytes]) -> bytes:
    mult = _sodium.crypto_scalarmult
    try:
        return b"".join([mult(secret, e) for e in elements])
    except nacl.exceptions.RuntimeError as err:  # libsodium refuses small-order inputs
        raise BadElement("an element of small order") from err


def blind_chunk(secret: bytes, prefix: bytes, ids: list[str]) -> bytes:
    """H(id)^secret for each (already normalised) ID, concatenated in order.

    Works in batches of :data:`BATCH` IDs, so the working set stays small at any size.
    """
    return b"".join(
        _mult(secret, hash_to_group(prefix, ids[lo : lo + BATCH]))
        for lo in range(0, len(ids), BATCH)
    )


def reblind_chunk(secret: bytes, data: bytes) -> bytes:
    """element^secret for each 32-byte element of ``data`` (checked by :func:`malformed_count`)."""
    size, step = ELEMENT_SIZE, BATCH * ELEMENT_SIZE
    return b"".join(
        _mult(secret, [data[k : k + size] for k in range(lo, min(lo + step, len(data)), size)])
        for lo in range(0, len(data), step)
    )


def malformed_count(data: bytes) -> int:
    """How many elements are not canonical encodings (top bit set, or u >= p); vectorised."""
    a = np.frombuffer(data, dtype=np.uint8).reshape(-1, ELEMENT_SIZE)
    top = (a[:, 31] & 0x80) != 0
    ge_p = (a[:, 31] == 0x7F) & np.all(a[:, 1:31] == 0xFF, axis=1) & (a[:, 0] >= 0xED)
    return int(np.count_nonzero(top | ge_p))


def random_elements(count: int) -> bytes:
    """``count`` random subgroup elements: X25519 public keys of fresh random scalars."""
    base = _sodium.crypto_scalarmult_base
    return b"".join([base(os.urandom(32)) for _ in range(count)])


def serve() -> None:
    """Worker process: read one pickled task from stdin, write a status byte and the result.

    Started by :mod:`confide.privacy.psi` as ``python -c`` with pipes only: the secret travels
    in memory through stdin, never through a file, an argument or the environment.
    """
    op, secret, prefix, payload = pickle.loads(sys.stdin.buffer.read())  # from our parent only
    try:
        if op == "blind":
            out = blind_chunk(secret, prefix, payload)
        else:
            out = reblind_chunk(secret, payload)
    except BadElement as err:
        sys.stdout.buffer.write(b"\x01" + str(err).encode())
    else:
        sys.stdout.buffer.write(b"\x00" + out)
    sys.stdout.buffer.flush()
