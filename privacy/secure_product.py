"""Dealer-assisted two-party matrix products over Z_2^64, and an end-to-end encrypted pair channel.

Vertical federated learning: the feature node A holds P (n x ca), the label node B holds Q
(n x cb), aligned row by row. B learns P^T Q plus noise that A adds, and nothing else; A learns
nothing. The coordinator relays every message and deals correlated randomness (Du & Atallah's
commodity-server product); it is assumed semi-honest and NOT colluding with either node.

Protocol (all arithmetic mod 2^64 on fixed-point encodings, :func:`encode_fixed`):

1. The dealer (:func:`deal`) draws two fresh AES keys and expands them into R_a (n x ca) and
   R_b (n x cb) (:func:`mask_matrix`), draws a uniform t (ca x cb) and sets
   u = R_a^T R_b - t. A gets (key_a, t), B gets (key_b, u).
2. A sends P + R_a (:func:`mask_a`), B sends Q + R_b (:func:`mask_b`); both travel through
   a :class:`PairChannel`, so the dealer, who knows the masks, relays ciphertext only. Each
   masked matrix is uniform to its receiver (a one-time pad over Z_2^64).
3. A computes t - R_a^T (Q + R_b) (+ its noise) (:func:`share_a_result`) and sends it to B;
   B computes (P + R_a)^T Q + u (:func:`share_b_result`); B adds them (:func:`combine`):
   (t - R_a^T Q - R_a^T R_b) + (P^T Q + R_a^T Q + R_a^T R_b - t) = P^T Q.

Fixed point: f = :data:`FRACTION_BITS` fraction bits; a product of two encodings has scale
2^(2f). With |value| <= :data:`MAX_ABS_VALUE` (2^5) an encoding is at most 2^21 in magnitude,
a product at most 2^42, and a sum over up to :data:`MAX_ROWS` (2^20) rows at most 2^62; noise
is limited to :data:`MAX_NOISE_ABS` (2^29, i.e. 2^61 at product scale), so the result never
leaves the signed 64-bit range and decodes exactly.

uint64 products: numpy's integer ``einsum`` wraps mod 2^64 exactly (checked against Python
integers in the tests). Measured on the 2-core development machine, (35000 x 90)^T @
(35000 x 18): ``einsum`` 0.04-0.07 s, ``matmul`` 0.23-0.42 s (the machine shared or not), so no
limb splitting is needed; :func:`mask_matrix` expands a 35000 x 90 mask in about 0.2 s.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.privacy.errors import PrivacyError

__all__ = [
    "FRACTION_BITS",
    "KEY_SIZE",
    "MAX_ABS_VALUE",
    "MAX_NOISE_ABS",
    "MAX_ROWS",
    "NONCE_SIZE",
    "DealerShareA",
    "DealerShareB",
    "PairChannel",
    "SecureProductError",
    "combine",
    "deal",
    "decode_product",
    "encode_fixed",
    "encode_noise",
    "mask_a",
    "mask_b",
    "mask_matrix",
    "share_a_result",
    "share_b_result",
]

#: Fraction bits of the fixed-point encoding (values are scaled by 2^16).
FRACTION_BITS = 16
#: Largest row count of one product: 2^20 products of 2^42 sum to at most 2^62.
MAX_ROWS = 2**20
#: Bytes of an AES-256 mask key and of an X25519 key.
KEY_SIZE = 32
#: Bytes of the random AES-GCM nonce in front of each sealed message.
NONCE_SIZE = 12
_TAG_SIZE = 16
# Bits left for |sum of products| + |noise| inside the signed 64-bit range (2^62 + 2^61 < 2^63).
_PRODUCT_SUM_BITS = 62
_NOISE_BITS = 61
_ROW_BITS = 20
_PAIR_INFO = b"confide/vertical/pair/v1|"
_UINT64 = np.dtype(np.uint64)
_UINT8 = np.dtype(np.uint8)


def _max_abs(fraction_bits: int) -> float:
    """Largest |value| at ``fraction_bits``: (2^b * 2^f)^2 * 2^20 rows <= 2^62."""
    return 2.0 ** ((_PRODUCT_SUM_BITS - _ROW_BITS) // 2 - fraction_bits)


def _max_noise(fraction_bits: int) -> float:
    """Largest |noise| at ``fraction_bits``: |noise| * 2^(2f) <= 2^61."""
    return 2.0 ** (_NOISE_BITS - 2 * fraction_bits)


#: Largest |value| :func:`encode_fixed` accepts at the default 16 fraction bits (2^5 = 32).
MAX_ABS_VALUE = _max_abs(FRACTION_BITS)
#: Largest |noise| :func:`encode_noise` accepts at the default 16 fraction bits (2^29).
MAX_NOISE_ABS = _max_noise(FRACTION_BITS)


class SecureProductError(PrivacyError):
    """A secure-product input or message Confide refuses (names the field and rule, no values)."""


# --------------------------------------------------------------------------- fixed point


def _check_fraction_bits(fraction_bits: int) -> None:
    if isinstance(fraction_bits, bool) or not isinstance(fraction_bits, int):
        raise SecureProductError("fraction_bits: must be an integer (rule: fixed-point)")
    if not 0 <= fraction_bits <= (_PRODUCT_SUM_BITS - _ROW_BITS) // 2:
        raise SecureProductError("fraction_bits: must lie in 0..21 (rule: fixed-point)")


def _as_float(a: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise SecureProductError(f"{name}: values are not numbers (rule: fixed-point)") from None
    if not np.isfinite(arr).all():
        raise SecureProductError(f"{name}: contains NaN or infinity (rule: fixed-point)")
    return arr


def _to_ring(scaled: np.ndarray) -> np.ndarray:
    return np.rint(scaled).astype(np.int64).view(np.uint64)


def encode_fixed(a: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """round(a * 2^f) as int64 viewed as uint64; refuses NaN, infinity and |a| > 2^(21-f)."""
    _check_fraction_bits(fraction_bits)
    arr = _as_float(a, "matrix")
    if arr.size and float(np.abs(arr).max()) > _max_abs(fraction_bits):
        raise SecureProductError(
            "matrix: a value exceeds the fixed-point bound MAX_ABS_VALUE; scale or clip the "
            "data first (rule: fixed-point)"
        )
    return _to_ring(arr * 2.0**fraction_bits)


def encode_noise(noise: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Noise encoded at the product scale 2^(2f) (uint64); refuses |noise| > 2^(61-2f)."""
    _check_fraction_bits(fraction_bits)
    arr = _as_float(noise, "noise")
    if arr.size and float(np.abs(arr).max()) > _max_noise(fraction_bits):
        raise SecureProductError(
            "noise: a value exceeds the bound MAX_NOISE_ABS (rule: fixed-point)"
        )
    return _to_ring(arr * 2.0 ** (2 * fraction_bits))


def decode_product(u: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """A product of two encodings (uint64, scale 2^(2f)) as float64."""
    _check_fraction_bits(fraction_bits)
    arr = _ring(u, "product")
    return arr.view(np.int64).astype(np.float64) / 2.0 ** (2 * fraction_bits)


# --------------------------------------------------------------------------- ring helpers


def _ring(a: Any, name: str, ndim: int | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != _UINT64:
        raise SecureProductError(
            f"{name}: must be a uint64 array (encode floats with encode_fixed) (rule: ring)"
        )
    if ndim is not None and a.ndim != ndim:
        raise SecureProductError(f"{name}: must be a {ndim}-D array (rule: ring)")
    return a


def _matrix(a: Any, name: str, cols: int | None = None) -> np.ndarray:
    arr = _ring(a, name, ndim=2)
    if cols is not None and arr.shape[1] != cols:
        raise SecureProductError(
            f"{name}: column count differs from the dealer's share (rule: shape)"
        )
    if arr.shape[0] > MAX_ROWS:
        raise SecureProductError(f"{name}: more than MAX_ROWS rows (rule: fixed-point)")
    return arr


def _tmatmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a^T b mod 2^64 for uint64 matrices (numpy integer einsum wraps exactly)."""
    return np.einsum("ni,nj->ij", a, b)


def mask_matrix(key: bytes, shape: tuple[int, int]) -> np.ndarray:
    """A uint64 matrix of ``shape`` from the AES-256-CTR keystream of ``key`` (zero nonce).

    Row-major, little-endian 8-byte words. Deterministic per key; a key masks one matrix only.
    """
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise SecureProductError("mask key: must be 32 bytes (rule: aes-256)")
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise SecureProductError("mask shape: must be two non-negative integers (rule: shape)")
    if shape[0] > MAX_ROWS:
        raise SecureProductError("mask shape: more than MAX_ROWS rows (rule: fixed-point)")
    size = shape[0] * shape[1] * 8
    encryptor = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor()
    stream = encryptor.update(bytes(size)) + encryptor.finalize()
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64).reshape(shape)


def _uniform(shape: tuple[int, int]) -> np.ndarray:
    raw = os.urandom(shape[0] * shape[1] * 8)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64).reshape(shape)


def _readonly(a: np.ndarray) -> np.ndarray:
    out = np.array(a, dtype=np.uint64, copy=True)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------- dealer shares


def _key_array(key: bytes) -> np.ndarray:
    return np.frombuffer(key, dtype=np.uint8).copy()


def _from_wire(arrays: Any, matrix_name: str, shape: tuple[int, int] | None, who: str):
    if not isinstance(arrays, dict) or set(arrays) != {"key", matrix_name}:
        raise SecureProductError(
            f"{who}: expected exactly the arrays 'key' and '{matrix_name}' (rule: wire)"
        )
    key, matrix = arrays["key"], arrays[matrix_name]
    if not isinstance(key, np.ndarray) or key.dtype != _UINT8 or key.shape != (KEY_SIZE,):
        raise SecureProductError(f"{who}: 'key' must be 32 uint8 values (rule: wire)")
    if not isinstance(matrix, np.ndarray) or matrix.dtype != _UINT64 or matrix.ndim != 2:
        raise SecureProductError(f"{who}: '{matrix_name}' must be a 2-D uint64 array (rule: wire)")
    if shape is not None and matrix.shape != tuple(shape):
        raise SecureProductError(f"{who}: '{matrix_name}' has not the expected shape (rule: wire)")
    return key.tobytes(), matrix


def _check_share(key: Any, matrix: Any, who: str, name: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise SecureProductError(f"{who}: the mask key must be 32 bytes (rule: aes-256)")
    if not isinstance(matrix, np.ndarray) or matrix.dtype != _UINT64 or matrix.ndim != 2:
        raise SecureProductError(f"{who}: '{name}' must be a 2-D uint64 array (rule: ring)")


@dataclass(frozen=True, eq=False)
class DealerShareA:
    """The feature node's correlated randomness: the key of R_a and t (ca x cb)."""

    key_a: bytes = field(repr=False)
    t: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        _check_share(self.key_a, self.t, "dealer share A", "t")
        object.__setattr__(self, "t", _readonly(self.t))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Wire form: {'key': uint8 (32,), 't': uint64 (ca, cb)}."""
        return {"key": _key_array(self.key_a), "t": np.array(self.t)}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], shape: tuple[int, int] | None = None
    ) -> DealerShareA:
        """Back from :meth:`to_arrays`; ``shape`` is the expected (ca, cb) when known."""
        key, t = _from_wire(arrays, "t", shape, "dealer share A")
        return cls(key_a=key, t=t)


@dataclass(frozen=True, eq=False)
class DealerShareB:
    """The label node's correlated randomness: the key of R_b and u = R_a^T R_b - t."""

    key_b: bytes = field(repr=False)
    u: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        _check_share(self.key_b, self.u, "dealer share B", "u")
        object.__setattr__(self, "u", _readonly(self.u))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Wire form: {'key': uint8 (32,), 'u': uint64 (ca, cb)}."""
        return {"key": _key_array(self.key_b), "u": np.array(self.u)}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], shape: tuple[int, int] | None = None
    ) -> DealerShareB:
        """Back from :meth:`to_arrays`; ``shape`` is the expected (ca, cb) when known."""
        key, u = _from_wire(arrays, "u", shape, "dealer share B")
        return cls(key_b=key, u=u)


def deal(n: int, ca: int, cb: int) -> tuple[DealerShareA, DealerShareB]:
    """The dealer's step: keys for R_a (n x ca) and R_b (n x cb), uniform t, u = R_a^T R_b - t.

    Keys and t come from ``os.urandom``; one key masks one matrix of one product only.
    """
    for name, value in (("n", n), ("ca", ca), ("cb", cb)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SecureProductError(f"deal: '{name}' must be a positive integer (rule: shape)")
    if n > MAX_ROWS:
        raise SecureProductError("deal: 'n' exceeds MAX_ROWS (rule: fixed-point)")
    key_a, key_b = os.urandom(KEY_SIZE), os.urandom(KEY_SIZE)
    r_a = mask_matrix(key_a, (n, ca))
    r_b = mask_matrix(key_b, (n, cb))
    t = _uniform((ca, cb))
    u = _tmatmul(r_a, r_b) - t
    return DealerShareA(key_a=key_a, t=t), DealerShareB(key_b=key_b, u=u)


# --------------------------------------------------------------------------- the two nodes


def mask_a(p_encoded: np.ndarray, share_a: DealerShareA) -> np.ndarray:
    """A's message to B: P + R_a (mod 2^64), uniform to B."""
    p = _matrix(p_encoded, "P", cols=share_a.t.shape[0])
    return p + mask_matrix(share_a.key_a, p.shape)


def share_a_result(
    share_a: DealerShareA, masked_b: np.ndarray, noise: np.ndarray | None = None
) -> np.ndarray:
    """A's share of P^T Q: t - R_a^T (Q + R_b) (mod 2^64).

    ``noise`` (float, ca x cb, at the product's units) is encoded with :func:`encode_noise` and
    added, so B learns P^T Q + noise.
    """
    mb = _matrix(masked_b, "masked Q", cols=share_a.t.shape[1])
    r_a = mask_matrix(share_a.key_a, (mb.shape[0], share_a.t.shape[0]))
    out = share_a.t - _tmatmul(r_a, mb)
    if noise is not None:
        enc = encode_noise(noise)
        if enc.shape != out.shape:
            raise SecureProductError("noise: shape differs from the product's (rule: shape)")
        out = out + enc
    return out


def mask_b(q_encoded: np.ndarray, share_b: DealerShareB) -> np.ndarray:
    """B's message to A: Q + R_b (mod 2^64), uniform to A."""
    q = _matrix(q_encoded, "Q", cols=share_b.u.shape[1])
    return q + mask_matrix(share_b.key_b, q.shape)


def share_b_result(
    share_b: DealerShareB, masked_a: np.ndarray, q_encoded: np.ndarray
) -> np.ndarray:
    """B's share of P^T Q: (P + R_a)^T Q + u (mod 2^64)."""
    ma = _matrix(masked_a, "masked P", cols=share_b.u.shape[0])
    q = _matrix(q_encoded, "Q", cols=share_b.u.shape[1])
    if ma.shape[0] != q.shape[0]:
        raise SecureProductError("masked P: row count differs from Q's (rule: shape)")
    return _tmatmul(ma, q) + share_b.u


def combine(share_a_result: np.ndarray, share_b_result: np.ndarray) -> np.ndarray:
    """The two shares added mod 2^64: P^T Q (+ A's noise) at scale 2^(2f); see decode_product."""
    a = _ring(share_a_result, "share of A", ndim=2)
    b = _ring(share_b_result, "share of B", ndim=2)
    if a.shape != b.shape:
        raise SecureProductError("shares: the two shapes differ (rule: shape)")
    return a + b


# --------------------------------------------------------------------------- pair channel


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise SecureProductError(f"pair channel: '{name}' must be non-empty text (rule: channel)")
    return value


class PairChannel:
    """AES-GCM between two nodes under an X25519 + HKDF-SHA256 key the relay cannot know.

    ``roles`` is (own role, peer role); the key binds the run id and the two roles (sorted, so
    both sides derive the same key), and each message binds the sender's role, the run id, the
    label, dtype and shape, so a relayed message cannot be reflected, replayed under another
    label or run, or reinterpreted.
    """

    def __init__(
        self, secret_bytes: bytes, peer_public: bytes, run_id: str, roles: tuple[str, str]
    ) -> None:
        self.run_id = _text(run_id, "run_id")
        if not isinstance(roles, tuple) or len(roles) != 2:
            raise SecureProductError("pair channel: 'roles' must be (own, peer) (rule: channel)")
        own, peer = (_text(r, "roles") for r in roles)
        if own == peer:
            raise SecureProductError("pair channel: the two roles must differ (rule: channel)")
        self.role, self.peer_role = own, peer
        if not isinstance(secret_bytes, bytes) or len(secret_bytes) != KEY_SIZE:
            raise SecureProductError("pair channel: the secret must be 32 bytes (rule: x25519)")
        if not isinstance(peer_public, bytes) or len(peer_public) != KEY_SIZE:
            raise SecureProductError("pair channel: the peer key must be 32 bytes (rule: x25519)")
        secret = X25519PrivateKey.from_private_bytes(secret_bytes)
        try:
            shared = secret.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            raise SecureProductError(
                "pair channel: the peer key is of small order (rule: x25519)"
            ) from None
        if shared == bytes(KEY_SIZE):
            raise SecureProductError("pair channel: all-zero shared secret (rule: x25519)")
        info = _PAIR_INFO + json.dumps([run_id, sorted(roles)]).encode("utf-8")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
        self._aead = AESGCM(key)
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"confide/vertical/pair/fingerprint|" + key)
        self.fingerprint = digest.finalize()[:8].hex()

    def __repr__(self) -> str:
        return f"PairChannel(role={self.role!r}, peer={self.peer_role!r}, key={self.fingerprint})"

    @staticmethod
    def generate() -> tuple[bytes, bytes]:
        """A fresh X25519 key pair: (secret bytes, public bytes), 32 bytes each."""
        secret = X25519PrivateKey.generate()
        raw = secret.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return raw, secret.public_key().public_bytes_raw()

    def _ad(self, sender: str, label: str, dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
        fields = {
            "v": 1,
            "run": self.run_id,
            "from": sender,
            "label": label,
            "dtype": dtype.str,
            "shape": list(shape),
        }
        return json.dumps(fields, sort_keys=True).encode("utf-8")

    @staticmethod
    def _dtype(dtype: Any) -> np.dtype:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise SecureProductError("pair channel: unknown dtype (rule: channel)") from None
        if dt.hasobject or dt.kind not in "biuf":
            raise SecureProductError("pair channel: only numeric arrays travel (rule: channel)")
        return dt

    def seal(self, array: np.ndarray, label: str) -> np.ndarray:
        """uint8 nonce (12 bytes) || AES-GCM ciphertext of the array's raw bytes."""
        _text(label, "label")
        if not isinstance(array, np.ndarray):
            raise SecureProductError("pair channel: seal takes a numpy array (rule: channel)")
        dt = self._dtype(array.dtype)
        nonce = os.urandom(NONCE_SIZE)
        payload = np.ascontiguousarray(array).tobytes()
        ct = self._aead.encrypt(nonce, payload, self._ad(self.role, label, dt, array.shape))
        return np.frombuffer(nonce + ct, dtype=np.uint8).copy()

    def open(self, blob: np.ndarray, label: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        """The peer's array sealed under ``label``; any tamper or mismatch is refused."""
        _text(label, "label")
        dt = self._dtype(dtype)
        if not isinstance(shape, tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise SecureProductError(
                "pair channel: shape must be non-negative ints (rule: channel)"
            )
        if not isinstance(blob, np.ndarray) or blob.dtype != _UINT8 or blob.ndim != 1:
            raise SecureProductError(
                f"pair channel: message '{label}' is not a 1-D uint8 array (rule: channel)"
            )
        expected = NONCE_SIZE + math.prod(shape) * dt.itemsize + _TAG_SIZE
        if blob.size != expected:
            raise SecureProductError(
                f"pair channel: message '{label}' has not the expected length (rule: channel)"
            )
        raw = blob.tobytes()
        try:
            plain = self._aead.decrypt(
                raw[:NONCE_SIZE], raw[NONCE_SIZE:], self._ad(self.peer_role, label, dt, shape)
            )
        except InvalidTag:
            raise SecureProductError(
                f"pair channel: message '{label}' failed authentication (tampered, or another "
                "run, label, sender or key) (rule: channel)"
            ) from None
        return np.frombuffer(plain, dtype=dt).reshape(shape).copy()
