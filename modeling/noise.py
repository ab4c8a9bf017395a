"""Where DP-SGD's randomness comes from: the Gaussian noise and the Poisson sampling.

A :class:`NoiseSource` hands the training loop one flat vector of Gaussian noise per step and a
NumPy generator for batch sampling. ``SeededNoise`` is reproducible from the run's seed (what
simulation uses by default, so a research run can be repeated number for number).
``SecureNoise`` draws its Gaussians from a ChaCha20 keystream under a fresh random key (what
every node uses in deployment). :func:`noise_source` builds either from the ``dp.noise`` setting.
"""

from __future__ import annotations

import math
import os
from typing import NoReturn, Protocol

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

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
_POOL = 1 << 16  # normals computed per refill (512 KiB of keystream): a DP step of a small
# model asks for a few hundred, and per-call NumPy overhead would otherwise dominate
_UNIT = 2.0**-53
_REKEY_BYTES = 1 << 32  # fresh key and nonce every 4 GiB of keystream (ChaCha20's 32-bit counter
# covers 256 GiB per key and nonce; rekeying far below that keeps the counter from ever wrapping)


class SecureNoise:
    """Gaussian noise from a ChaCha20 keystream under a key only this object ever holds.

    The 256-bit key and 96-bit nonce come from ``os.urandom`` when the source is built (and again
    every 4 GiB of keystream); the key lives only inside the cipher context, so it is never in a
    repr, a log, an exception or a pickle (pickling and copying are refused). Keystream bytes
    become 53-bit uniforms in (0, 1), Marsaglia's polar method turns them into normals in float64,
    and each returned value sums four normals over two as Opacus's ``secure_mode`` does; the
    result is cast to float32. Normals are computed 2^16 at a time and each is released once.
    """

    name = "secure"

    def __init__(self) -> None:
        self._rekey()
        self._sampling: np.random.Generator | None = None
        self._pool = np.empty(0, dtype=np.float64)  # normals computed but not yet released
        self._taken = 0

    def _rekey(self) -> None:
        # ChaCha20 in `cryptography` takes a 16-byte nonce: a 32-bit block counter (0) then 96 bits.
        nonce = b"\x00" * 4 + os.urandom(12)
        self._stream = Cipher(algorithms.ChaCha20(os.urandom(32), nonce), mode=None).encryptor()
        self._used = 0

    def _uniforms(self, n: int) -> np.ndarray:
        """``n`` independent uniforms on the open interval (0, 1), 53 random bits each."""
        if self._used + 8 * n > _REKEY_BYTES:
            self._rekey()
        self._used += 8 * n
        words = np.frombuffer(self._stream.update(bytes(8 * n)), dtype="<u8")
        return ((words >> np.uint64(11)).astype(np.float64) + 0.5) * _UNIT

    def _normals(self, n: int) -> np.ndarray:
        """``n`` independent standard normals in float64: Marsaglia's polar method (exact, no
        trigonometry) on consecutive pairs of keystream uniforms, so the first ``k`` of ``n``
        normals do not depend on ``n``."""
        parts, have = [], 0
        while have < n:
            pairs = int((n - have) * 0.64) + 64  # ~pi/4 of the pairs fall inside the unit disc
            u = self._uniforms(2 * pairs)
            u *= 2.0
            u -= 1.0  # in (-1, 1), never 0
            x, y = u[0::2], u[1::2]
            s = x * x
            s += y * y
            inside = s < 1.0
            x, y, s = x[inside], y[inside], s[inside]
            factor = np.log(s)
            factor *= -2.0
            factor /= s
            np.sqrt(factor, out=factor)
            out = np.empty(2 * len(s), dtype=np.float64)
            np.multiply(x, factor, out=out[0::2])
            np.multiply(y, factor, out=out[1::2])
            parts.append(out)
            have += len(out)
        return np.concatenate(parts)[:n] if len(parts) > 1 else parts[0][:n]

    def _take(self, n: int) -> np.ndarray:
        """The next ``n`` normals of the stream, each released once (refilled in bulk)."""
        if self._taken + n > len(self._pool):
            rest = self._pool[self._taken :]
            self._pool = np.concatenate([rest, self._normals(max(n - len(rest), _POOL))])
            self._taken = 0
        out = self._pool[self._taken : self._taken + n]
        self._taken += n
        return out

    def gaussian(self, n: int, std: float) -> torch.Tensor:
        """``n`` draws from N(0, std²), each the sum of four keystream normals over two."""
        n = int(n)
        if n == 0:
            return torch.empty(0, dtype=torch.float32)
        draws = self._take(_SUMMED_DRAWS * n).reshape(_SUMMED_DRAWS, n)
        total = draws.sum(axis=0) * (float(std) / math.sqrt(_SUMMED_DRAWS))
        return torch.from_numpy(total.astype(np.float32))

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
        return "SecureNoise(ChaCha20, key hidden)"

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
