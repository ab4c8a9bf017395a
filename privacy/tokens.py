"""Token batching: vectorised unpadded urlsafe-base64 assembly of pseudonym and ciphertext tokens
(an encoding, not a cipher; unrelated to feature encoding in ``confide.modeling.encoding``).

Encrypting or MAC-ing is done per value by ``cryptography``; turning millions of byte strings
into ``prefix + base64`` text one Python call at a time would dominate the cost, so equal-length
blobs are encoded together as NumPy byte matrices.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["SLICE", "b64_matrix", "concat", "slices", "tokens_from_blobs", "tokens_from_matrices"]

SLICE = 8_192  # values handled per Python-level batch (bounds transient object memory)


def slices(arr: pa.Array, size: int = SLICE, *, as_bytes: bool = False):
    """Yield ``arr`` as lists of Python values (UTF-8 ``bytes`` if ``as_bytes``), in batches."""
    if as_bytes:
        arr = arr.cast(pa.large_binary())
    for start in range(0, len(arr), size):
        yield arr.slice(start, size).to_pylist()


def concat(pieces: list[pa.Array]) -> pa.Array:
    """Concatenate Arrow string arrays (an empty large_string array for none)."""
    if not pieces:
        return pa.array([], type=pa.large_string())
    return pa.concat_arrays([p.cast(pa.large_string()) for p in pieces])


_ALPHABET = np.frombuffer(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", dtype=np.uint8
)


def b64_matrix(m: np.ndarray) -> np.ndarray:
    """Unpadded urlsafe base64 of each row of a uint8 matrix, as a uint8 char matrix."""
    n, w = m.shape
    pad = (-w) % 3
    if pad:
        m = np.concatenate([m, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    t = m.reshape(n, -1, 3)
    b0, b1, b2 = t[..., 0], t[..., 1], t[..., 2]
    out = np.empty((n, t.shape[1], 4), dtype=np.uint8)
    out[..., 0] = b0 >> 2
    out[..., 1] = ((b0 & 3) << 4) | (b1 >> 4)
    out[..., 2] = ((b1 & 15) << 2) | (b2 >> 6)
    out[..., 3] = b2 & 63
    return _ALPHABET[out.reshape(n, -1)[:, : (4 * w + 2) // 3]]


def _rows_to_arrow(chars: np.ndarray) -> pa.Array:
    n, w = chars.shape
    if n == 0:
        return pa.array([], type=pa.large_string())
    flat = np.ascontiguousarray(chars).view(f"S{w}").ravel()
    return pa.array(flat, type=pa.binary(w)).cast(pa.large_binary()).cast(pa.large_string())


def tokens_from_matrices(prefix: str, parts: list[np.ndarray]) -> pa.Array:
    """``prefix + b64(parts[0]) + "." + b64(parts[1]) ...`` for each row (equal widths)."""
    n = parts[0].shape[0]
    pieces = [
        np.broadcast_to(np.frombuffer(prefix.encode("ascii"), dtype=np.uint8), (n, len(prefix)))
    ]
    for i, p in enumerate(parts):
        if i:
            pieces.append(np.full((n, 1), ord("."), dtype=np.uint8))
        pieces.append(b64_matrix(p))
    return _rows_to_arrow(np.concatenate(pieces, axis=1))


def tokens_from_blobs(prefix: str, blobs: list[bytes]) -> pa.Array:
    """``prefix + b64(blob)`` for every blob, in input order (grouped by length internally)."""
    n = len(blobs)
    if n == 0:
        return pa.array([], type=pa.large_string())
    lens = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=n)
    if (lens == lens[0]).all():
        m = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(n, int(lens[0]))
        return tokens_from_matrices(prefix, [m])
    order = np.argsort(lens, kind="stable")
    sorted_lens = lens[order]
    starts = np.flatnonzero(np.r_[True, sorted_lens[1:] != sorted_lens[:-1]])
    ends = np.r_[starts[1:], n]
    chunks = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[a:b]
        buf = b"".join([blobs[i] for i in rows.tolist()])
        m = np.frombuffer(buf, dtype=np.uint8).reshape(b - a, int(sorted_lens[a]))
        chunks.append(tokens_from_matrices(prefix, [m]))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return pa.concat_arrays(chunks).take(pa.array(inverse))
