"""The secure noise source: Gaussian with the right scale, fresh keys, a key that never leaves.

The distribution tests draw 200,000 values; each statistical assertion has a stated false-alarm
rate (at most 1e-6 per test run, since the secure source cannot be seeded), and each has a
control (a broken sampler) that the same assertion rejects by a wide margin.
"""

from __future__ import annotations

import copy
import math
import os
import pickle

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy import stats

from confide.modeling import noise as noise_module
from confide.modeling.noise import (
    NoiseSourceError,
    SecureNoise,
    SeededNoise,
    noise_source,
)

N = 200_000
_REAL_NORMALS = SecureNoise._normals
STD = 1.7
# Kolmogorov-Smirnov: P(D > d) <= 2 exp(-2 n d^2) (Dvoretzky-Kiefer-Wolfowitz-Massart), so
# d = sqrt(ln(2 / alpha) / (2 n)) has false-alarm rate <= alpha = 1e-6 (d = 0.0060 at n = 200k).
ALPHA = 1e-6
KS_LIMIT = math.sqrt(math.log(2 / ALPHA) / (2 * N))
Z = 5.0  # |z| > 5 for a mean or a standard deviation: two-sided false alarm 5.7e-7


def _check_gaussian(sample: np.ndarray, std: float) -> None:
    """Mean, standard deviation and shape of N(0, std^2), each at false-alarm <= 1e-6."""
    assert abs(sample.mean()) < Z * std / math.sqrt(len(sample)), "mean"
    # the sample std of n normals has standard error std / sqrt(2 n)
    assert abs(sample.std() - std) < Z * std / math.sqrt(2 * len(sample)), "std"
    assert stats.kstest(sample / std, "norm").statistic < KS_LIMIT, "KS"


def _draw(source) -> np.ndarray:
    out = source.gaussian(N, STD)
    assert out.dtype == torch.float32 and out.shape == (N,)
    return out.numpy().astype(np.float64)


def test_secure_noise_is_gaussian_with_the_asked_std():
    _check_gaussian(_draw(SecureNoise()), STD)


@pytest.mark.parametrize(
    "broken",
    [
        # keystream uniforms used as if they were noise (rescaled to the right variance)
        lambda self, n: (self._uniforms(n) - 0.5) * math.sqrt(12.0),
        # a Box-Muller radius without the log: the wrong distribution, variance kept near 1
        lambda self, n: np.sqrt(3.0 * self._uniforms(n)) * np.cos(2 * np.pi * self._uniforms(n)),
        # the right shape at the wrong scale (four draws summed but divided by four)
        lambda self, n: 0.5 * _REAL_NORMALS(self, n),
    ],
    ids=["uniform-bytes", "no-log-radius", "wrong-std"],
)
def test_control_a_broken_sampler_is_rejected(monkeypatch, broken):
    monkeypatch.setattr(SecureNoise, "_normals", broken)
    with pytest.raises(AssertionError):
        _check_gaussian(_draw(SecureNoise()), STD)


def _fixed_entropy(monkeypatch, byte: bytes) -> tuple[bytes, bytes]:
    """Every os.urandom call returns ``byte`` repeated; the (key, initial counter) a source uses."""
    monkeypatch.setattr(noise_module.os, "urandom", lambda k: byte * k)
    return byte * 32, byte * 16


def _aes256_ctr_keystream(key: bytes, counter: bytes, size: int) -> bytes:
    """``size`` bytes of AES-256-CTR keystream built block by block: AES-256 (ECB, one block at a
    time) of the big-endian 128-bit counter, counter + 1, ... mod 2^128."""
    start = int.from_bytes(counter, "big")
    blocks = b"".join(((start + i) % 2**128).to_bytes(16, "big") for i in range(-(-size // 16)))
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(blocks)[:size]


def _box_muller_from_keystream(key: bytes, counter: bytes, n: int) -> np.ndarray:
    """``n`` normals recomputed from the raw AES-256-CTR keystream, independently of SecureNoise."""
    stream = _aes256_ctr_keystream(key, counter, 8 * n)
    top = (np.frombuffer(stream, dtype="<i8") >> 11).astype(np.float64)  # top 53 bits, signed
    u = (2.0**52 - top[: n // 2]) / 2.0**53  # in (0, 1]
    radius = np.sqrt(-2.0 * np.log(u))
    angle = 2.0 * np.pi * top[n // 2 :] / 2.0**53  # in [-pi, pi)
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])


# 0xff..ff as the initial counter: the 128-bit counter block wraps to zero after the first block
@pytest.mark.parametrize("byte", [b"\x2a", b"\xff"])
def test_normals_are_box_muller_on_the_keystream(monkeypatch, byte):
    key, counter = _fixed_entropy(monkeypatch, byte)
    expected = _box_muller_from_keystream(key, counter, 2000)
    got = SecureNoise()._normals(2000)
    # torch's and NumPy's log/cos/sin differ by at most a few ulps
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)
    # control: the keystream under another key does not reproduce them
    other = _box_muller_from_keystream(b"\x2b" * 32, counter, 2000)
    assert np.abs(got - other).max() > 1.0


def test_each_value_sums_four_draws_as_opacus_secure_mode(monkeypatch):
    # Opacus 1.6 _generate_noise (secure_mode): sum of 2n = 4 Gaussians divided by 2. Two sources
    # on the same (fixed) entropy share one stream: a block of B released values is four rows of
    # the stream's first 4B normals (rows 2 and 3, the sine normals, shifted by one pair), summed
    # and halved; released in order across calls.
    _fixed_entropy(monkeypatch, b"\x2a")
    released, stream = SecureNoise(), SecureNoise()
    block = noise_module._BLOCK
    rows = stream._normals(4 * block).reshape(4, block)
    shifted = np.roll(rows[2:], -1, axis=1)
    expected = (rows[0] + rows[1] + shifted[0] + shifted[1]) * (1.5 / 2)
    first, second = released.gaussian(1000, 1.5), released.gaussian(500, 1.5)
    assert torch.equal(torch.cat([first, second]), torch.from_numpy(expected[:1500].astype("f4")))
    # each value's four normals come from four different Box-Muller pairs: value j takes pairs
    # j, B + j (cosines) and j + 1, B + j + 1 (sines), so no two of its normals share a radius
    pairs = np.array([[j, block + j, (j + 1) % block, block + (j + 1) % block] for j in (0, 1, 7)])
    assert all(len(set(p)) == 4 for p in pairs.tolist())
    # control: without the shift, value j would sum both normals of pairs j and B + j
    unshifted = (rows[0] + rows[1] + rows[2] + rows[3]) * (1.5 / 2)
    assert not torch.equal(first, torch.from_numpy(unshifted[:1000].astype("f4")))


def test_zero_draws_and_zero_std():
    source = SecureNoise()
    assert source.gaussian(0, 1.0).shape == (0,)
    assert torch.equal(source.gaussian(7, 0.0), torch.zeros(7))


def test_two_sources_and_two_calls_never_repeat():
    a, b = SecureNoise(), SecureNoise()
    first, second = a._uniforms(4096), b._uniforms(4096)
    # 53-bit uniforms: any shared value between two fresh keystreams has chance < 2^-28 here
    assert not set(first.tolist()) & set(second.tolist())
    assert not set(first.tolist()) & set(a._uniforms(4096).tolist())
    ga, gb = a.gaussian(10_000, 1.0).double(), b.gaussian(10_000, 1.0).double()
    # independent streams: correlation of 10,000 pairs has sd 0.01; |r| < 0.05 is a 5-sigma bound
    assert abs(float(torch.corrcoef(torch.stack([ga, gb]))[0, 1])) < 0.05


def test_control_fixed_entropy_repeats(monkeypatch):
    # the freshness comes from os.urandom: with it fixed, two sources give the same stream
    monkeypatch.setattr(noise_module.os, "urandom", lambda k: b"\x07" * k)
    assert torch.equal(SecureNoise().gaussian(100, 1.0), SecureNoise().gaussian(100, 1.0))


def test_rekeying_keeps_the_distribution(monkeypatch):
    monkeypatch.setattr(noise_module, "_REKEY_BYTES", 8 * 4096)
    keys = []
    real = os.urandom

    def recording(k):
        out = real(k)
        keys.append(out)
        return out

    monkeypatch.setattr(noise_module.os, "urandom", recording)
    source = SecureNoise()
    values = np.concatenate([source.gaussian(N // 50, STD).numpy() for _ in range(50)])
    # every refill (2^14 values from 2^16 normals, 512 KiB of keystream) passes the 32 KiB limit
    # and rekeys: the 800,000 normals behind these 200,000 values take at least 13 refills
    assert len([k for k in keys if len(k) == 32]) >= 13
    _check_gaussian(values.astype(np.float64), STD)


def test_the_key_never_appears_in_repr_and_pickling_is_refused(monkeypatch):
    keys: list[bytes] = []
    real = os.urandom

    def recording(k):
        out = real(k)
        keys.append(out)
        return out

    monkeypatch.setattr(noise_module.os, "urandom", recording)
    source = SecureNoise()
    (key,) = [k for k in keys if len(k) == 32]
    shown = repr(source) + str(source) + repr(vars(source))
    assert key.hex() not in shown and repr(key) not in shown
    assert not [v for v in vars(source).values() if isinstance(v, bytes | bytearray)]
    for leak in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(NoiseSourceError, match="cannot be pickled or copied") as err:
            leak(source)
        assert key.hex() not in str(err.value)


def test_control_seeded_noise_pickles_and_repeats():
    # what the secure source refuses, the seeded one does: it is reproducible by design
    seeded = SeededNoise(5)
    copied = pickle.loads(pickle.dumps(seeded))
    assert torch.equal(copied.gaussian(10, 1.0), seeded.gaussian(10, 1.0))


def test_sampling_generator_is_fresh_per_source_and_kept_per_source():
    a, b = SecureNoise(), SecureNoise()
    assert a.sampling_generator() is a.sampling_generator()
    draws_a = a.sampling_generator().integers(0, 2**63, size=4)
    draws_b = b.sampling_generator().integers(0, 2**63, size=4)
    assert not set(draws_a.tolist()) & set(draws_b.tolist())


def test_noise_source_factory():
    assert isinstance(noise_source("secure", 0), SecureNoise)
    seeded = noise_source("seeded", 3)
    assert isinstance(seeded, SeededNoise)
    assert torch.equal(seeded.gaussian(5, 1.0), SeededNoise(3).gaussian(5, 1.0))
    with pytest.raises(NoiseSourceError, match=r"^dp\.noise must be one of seeded, secure") as err:
        noise_source("urandom", 0)
    assert "urandom" not in str(err.value) and "\n" not in str(err.value)
