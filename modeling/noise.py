"""Where DP-SGD's randomness comes from: the Gaussian noise and the Poisson sampling.

A :class:`NoiseSource` hands the training loop one flat vector of Gaussian noise per step and a
NumPy generator for batch sampling. ``SeededNoise`` is reproducible from the run's seed (what
simulation uses by default, so a research run can be repeated number for number).
``SecureNoise`` draws its Gaussians from an AES-256-CTR keystream under a fresh random key (what
every node uses in deployment). :func:`noise_source` builds either from the ``dp.noise`` setting.
"""

from __future__ import annotations

import math
import os
from typing import NoReturn, Protocol

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from confide.core.errors import ConfideError
from confide.modeling.training_settings import NOISE_KINDS

__all__ = [
    "NOISE_KINDS",
    "NoiseSource",
    "NoiseSourceError",
    "SecureNoise",
    "SeededNoise",
    "noise_source",
]


class NoiseSourceError(ConfideError):
    """An unknown noise source was asked for, or a secure source was copied or pickled."""


class NoiseSource(Protocol):
    """The randomness one node's DP-SGD draws on for one round."""

    name: str

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` independent N(0, std²) draws as a flat float32 tensor."""
        ...

    def sampling_generator(self) -> np.random.Generator:
        """The generator the Poisson batch sampler draws batch sizes and members from."""
        ...


class SeededNoise:
    """Noise and sampling reproducible from ``seed`` (torch's and NumPy's default generators)."""

    name = "seeded"

    def __init__(self, seed: int) -> None:
        self._torch = torch.Generator().manual_seed(int(seed))
        self._numpy = np.random.default_rng(int(seed))

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` draws from N(0, std²) with torch's seeded generator."""
        out = torch.empty(int(n), dtype=torch.float32)
        if n:
            out.normal_(mean=0.0, std=float(std), generator=self._torch)
        return out

    def sampling_generator(self) -> np.random.Generator:
        """The seeded NumPy generator (one per source, advanced by every draw)."""
        return self._numpy


# Opacus's mitigation against floating-point attacks on the Gaussian sampler (Opacus 1.6,
# opacus/optimizers/optimizer.py::_generate_noise, secure_mode branch, after Holohan & Braghin,
# arXiv:2107.10138 §5.1): every released value is the sum of 2n = 4 independent N(0, std²)
# draws divided by sqrt(2n) = 2, so the low-order bits of one draw cannot be inverted to the
# uniforms behind it (attack work 2^(53(2n-1)) = 2^159 for n = 2).
_SUMMED_DRAWS = 4
_CHUNK = 1 << 16  # normals computed per keystream request (512 KiB of keystream): the fastest of
# 2^12..2^17 on the reference machine (smaller chunks pay torch's per-operation overhead more often)
_BLOCK = _CHUNK // _SUMMED_DRAWS  # released values computed per refill: one chunk of normals
_ZEROS = memoryview(bytes(8 * _CHUNK))  # AES-256-CTR encrypts zeros into its keystream
_BITS = 53  # random bits per uniform: a float64's full significand
_UNIT = 2.0**-_BITS
_TWO_PI = 2.0 * math.pi
_REKEY_BYTES = 1 << 32  # fresh key and counter every 4 GiB of keystream: 2^28 AES blocks per key,
# far inside AES-CTR's limits (a 128-bit counter never repeats a block under one key, and the
# keystream's distance from uniform bytes stays about 2^56 / 2^128 = 2^-72 per key)


class SecureNoise:
    """Gaussian noise from an AES-256-CTR keystream under a key only this object ever holds.

    The 256-bit key and the 128-bit initial counter block come from ``os.urandom`` when the
    source is built, and again every 4 GiB of keystream (AES in counter mode under a random key is
    the core of NIST SP 800-90A's CTR_DRBG; with AES-NI it is the fastest keystream available
    here). The key lives only inside the cipher context, so it is never in a repr, a log, an
    exception or a pickle (pickling and copying are refused). Keystream bytes
    become 53-bit uniforms in (0, 1], the Box-Muller transform turns pairs of them into normals in
    float64 (what ``torch.normal`` does, so what Opacus's ``secure_mode`` draws with a
    cryptographic generator), and each released value sums four normals over two as
    ``secure_mode`` does; the result is cast to float32 at the caller's std. Released values are
    computed 2^14 at a time (2^16 normals) and each is released once.
    """

    name = "secure"

    def __init__(self) -> None:
        self._rekey()
        self._sampling: np.random.Generator | None = None
        self._pool = np.empty(0, dtype=np.float64)  # released values computed, not yet released
        self._taken = 0
        # one chunk's workspaces, reused (fresh 512 KiB arrays per chunk cost page faults); the
        # keystream buffer is zeroed after each use, so no keystream outlives a call
        self._keystream = torch.zeros(_CHUNK, dtype=torch.int64)
        self._top = torch.empty(_CHUNK, dtype=torch.float64)
        self._cos = torch.empty(_CHUNK // 2, dtype=torch.float64)
        self._chunk = np.empty(_CHUNK, dtype=np.float64)

    def _rekey(self) -> None:
        # AES-256 in counter mode: a random 256-bit key and a random 128-bit initial counter block
        # (the whole block counts up, wrapping mod 2^128, so no block repeats under one key).
        key, counter = os.urandom(32), os.urandom(16)
        self._stream = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
        del key, counter
        self._used = 0

    def _top_bits(self, n: int) -> torch.Tensor:
        """The top 53 bits of ``n`` (at most one chunk) keystream words, read as signed whole
        numbers ``s`` in [-2^52, 2^52) and held exactly in float64 (a view of the workspace,
        valid until the next call)."""
        if self._used + 8 * n > _REKEY_BYTES:
            self._rekey()
        self._used += 8 * n
        words = self._keystream[:n]
        self._stream.update_into(_ZEROS[: 8 * n], memoryview(words.numpy()).cast("B"))
        words >>= 64 - _BITS
        top = self._top[:n].copy_(words)
        words.zero_()
        return top

    def _uniforms(self, n: int) -> np.ndarray:
        """``n`` independent uniforms on (0, 1] from the keystream, 53 random bits each:
        ``(2^52 - s) / 2^53``, exact in float64 (a whole number of 2^-53 steps)."""
        out = np.empty(n, dtype=np.float64)
        for start in range(0, n, _CHUNK):
            top = self._top_bits(min(_CHUNK, n - start))
            out[start : start + _CHUNK] = top.mul_(-_UNIT).add_(0.5).numpy()
        return out

    def _normals(self, n: int) -> np.ndarray:
        """``n`` independent standard normals in float64 by Box-Muller, one chunk at a time.

        A chunk of ``2m`` normals takes ``2m`` keystream words, ``s`` their signed top 53 bits:
        pair ``i`` has radius sqrt(-2 ln u) with ``u = (2^52 - s[i]) / 2^53`` in (0, 1] (so the
        radius is finite) and angle ``2 pi s[m + i] / 2^53`` in [-pi, pi). The chunk holds the
        ``m`` cosine normals, then the ``m`` sine normals (pair ``i`` at ``i`` and ``m + i``). No
        rejection and no branches: every keystream word is used once. One whole chunk (what a
        refill asks for) comes back in the workspace, valid until the next call.
        """
        out = self._chunk if n == _CHUNK else np.empty(n, dtype=np.float64)
        for start in range(0, n, _CHUNK):
            count = min(_CHUNK, n - start)
            half = (count + 1) // 2
            top = self._top_bits(2 * half)
            radius = top[:half].mul_(-_UNIT).add_(0.5).log_().mul_(-2.0)
            np.sqrt(radius.numpy(), out=radius.numpy())  # NumPy's float64 sqrt is faster here
            angle = top[half:].mul_(_TWO_PI * _UNIT)
            chunk = torch.from_numpy(out[start : start + count])
            torch.mul(radius, torch.cos(angle, out=self._cos[:half]), out=chunk[:half])
            tail = count - half
            torch.mul(radius[:tail], angle[:tail].sin_(), out=chunk[half:])
        return out

    def _refill(self, n: int) -> None:
        """Compute at least ``n`` more released values after the unreleased ones, in blocks.

        A block of ``B`` values takes one chunk of ``4B`` normals as four rows: rows 0 and 1 are
        the cosine normals of pairs ``[0, B)`` and ``[B, 2B)``, rows 2 and 3 the sine normals of
        the same pairs shifted by one (value ``j`` takes pairs ``j``, ``B + j``, ``j + 1``,
        ``B + j + 1``, mod ``B`` within each half). So each value sums four normals from four
        different Box-Muller pairs, as Opacus's four ``torch.normal`` calls do, over two.
        """
        blocks = -(-n // _BLOCK)
        rest = self._pool[self._taken :]
        pool = np.empty(len(rest) + blocks * _BLOCK, dtype=np.float64)
        pool[: len(rest)] = rest
        for b in range(blocks):
            rows = self._normals(_SUMMED_DRAWS * _BLOCK).reshape(_SUMMED_DRAWS, _BLOCK)
            value = pool[len(rest) + b * _BLOCK : len(rest) + (b + 1) * _BLOCK]
            np.add(rows[0], rows[1], out=value)
            for row in rows[2:]:
                value[:-1] += row[1:]
                value[-1] += row[0]
            value *= 1.0 / math.sqrt(_SUMMED_DRAWS)  # exact: a power of two
        self._pool, self._taken = pool, 0

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` draws from N(0, std²), each the sum of four keystream normals over two."""
        n = int(n)
        if n == 0:
            return torch.empty(0, dtype=torch.float32)
        if self._taken + n > len(self._pool):
            self._refill(self._taken + n - len(self._pool))
        values = self._pool[self._taken : self._taken + n]
        self._taken += n
        return torch.from_numpy((values * float(std)).astype(np.float32))

    def sampling_generator(self) -> np.random.Generator:
        """A NumPy PCG64 generator seeded with 256 bits from ``os.urandom``.

        This is not the keystream: NumPy's Poisson sampler needs a NumPy bit generator, and PCG64
        is not a cryptographic generator (its state could in principle be recovered from enough
        of its outputs). Its outputs, the rows in each batch, never leave the node, and its seed
        is unpredictable; the noise that hides each customer comes from the keystream above.
        """
        if self._sampling is None:
            entropy = int.from_bytes(os.urandom(32), "little")
            self._sampling = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
        return self._sampling

    def __repr__(self) -> str:
        return "SecureNoise(AES-256-CTR, key hidden)"

    def __reduce__(self) -> NoReturn:
        raise NoiseSourceError(
            "a secure noise source cannot be pickled or copied: its key never leaves the process "
            "(rule: secure noise key)"
        )

    def __copy__(self) -> NoReturn:
        self.__reduce__()

    def __deepcopy__(self, memo: object) -> NoReturn:
        self.__reduce__()


def noise_source(kind: str, seed: int) -> NoiseSource:
    """The noise source ``dp.noise`` names: ``seeded`` (from ``seed``) or ``secure``."""
    if kind == "seeded":
        return SeededNoise(seed)
    if kind == "secure":
        return SecureNoise()
    raise NoiseSourceError(
        f"dp.noise must be one of {', '.join(NOISE_KINDS)} (rule: noise source); "
        "got an unknown value"
    )
