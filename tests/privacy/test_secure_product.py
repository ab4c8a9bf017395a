"""Dealer-assisted secure matrix products and the pair channel (privacy/secure_product.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scipy.stats import chisquare
from sklearn.metrics import roc_auc_score

from confide.core.errors import ConfideError
from confide.privacy import secure_product as sp
from confide.privacy.secure_product import (
    FRACTION_BITS,
    MAX_ABS_VALUE,
    MAX_NOISE_ABS,
    DealerShareA,
    DealerShareB,
    PairChannel,
    SecureProductError,
    combine,
    deal,
    decode_product,
    encode_fixed,
    encode_noise,
    mask_a,
    mask_b,
    mask_matrix,
    share_a_result,
    share_b_result,
)

FALSE_ALARM = 1e-6


def _data(rng: np.random.Generator, n: int, ca: int, cb: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(rng.normal(0.0, 4.0, size=(n, ca)), -MAX_ABS_VALUE, MAX_ABS_VALUE)
    q = np.clip(rng.normal(-1.0, 3.0, size=(n, cb)), -MAX_ABS_VALUE, MAX_ABS_VALUE)
    return p, q


def _protocol(p: np.ndarray, q: np.ndarray, noise: np.ndarray | None = None) -> dict:
    pe, qe = encode_fixed(p), encode_fixed(q)
    share_a, share_b = deal(p.shape[0], p.shape[1], q.shape[1])
    masked_a = mask_a(pe, share_a)  # A -> B
    masked_b = mask_b(qe, share_b)  # B -> A
    res_a = share_a_result(share_a, masked_b, noise=noise)  # A -> B
    res_b = share_b_result(share_b, masked_a, qe)
    return {
        "pe": pe,
        "qe": qe,
        "masked_a": masked_a,
        "masked_b": masked_b,
        "res_a": res_a,
        "res_b": res_b,
        "product": combine(res_a, res_b),
    }


# --------------------------------------------------------------------------- correctness


def test_product_is_exact_in_the_ring_and_close_to_float() -> None:
    rng = np.random.default_rng(1)
    n = 1000
    p, q = _data(rng, n, 5, 3)
    assert (p < 0).any() and (q < 0).any()
    out = _protocol(p, q)
    exact = out["pe"].view(np.int64).T @ out["qe"].view(np.int64)
    assert out["product"].dtype == np.uint64
    np.testing.assert_array_equal(out["product"].view(np.int64), exact)
    tol = 2.0**-14 * n
    err = np.abs(decode_product(out["product"]) - p.T @ q)
    assert err.max() <= tol
    # Control: B's share alone (or A's) is unrelated to the product.
    alone = np.abs(decode_product(out["res_b"]) - p.T @ q)
    assert alone.min() > tol
    alone_a = np.abs(decode_product(out["res_a"]) - p.T @ q)
    assert alone_a.min() > tol


def test_noise_added_by_a_lands_in_the_product() -> None:
    rng = np.random.default_rng(2)
    p, q = _data(rng, 1000, 4, 2)
    noise = rng.normal(0.0, 50.0, size=(4, 2))
    out = _protocol(p, q, noise=noise)
    exact = out["pe"].view(np.int64).T @ out["qe"].view(np.int64)
    np.testing.assert_array_equal(
        out["product"].view(np.int64), exact + encode_noise(noise).view(np.int64)
    )
    tol = 2.0**-14 * 1000
    assert np.abs(decode_product(out["product"]) - (p.T @ q + noise)).max() <= tol
    # Control: the noise is really there (it is far larger than the tolerance).
    assert np.abs(decode_product(out["product"]) - p.T @ q).max() > 10 * tol


def test_uint64_products_wrap_exactly() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 2**64, size=(40, 3), dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, size=(40, 2), dtype=np.uint64, endpoint=False)
    got = sp._tmatmul(a, b)
    want = [
        [
            sum(int(x) * int(y) for x, y in zip(a[:, i], b[:, j], strict=True)) % 2**64
            for j in range(2)
        ]
        for i in range(3)
    ]
    assert got.tolist() == want
    # Control: without the reduction the true integers differ (they overflow 64 bits).
    assert got.tolist() != [
        [sum(int(x) * int(y) for x, y in zip(a[:, i], b[:, j], strict=True)) for j in range(2)]
        for i in range(3)
    ]


def test_shares_of_mismatched_shapes_are_refused() -> None:
    share_a, share_b = deal(10, 3, 2)
    with pytest.raises(SecureProductError, match="column count"):
        mask_a(encode_fixed(np.zeros((10, 4))), share_a)
    with pytest.raises(SecureProductError, match="uint64"):
        mask_b(np.zeros((10, 2)), share_b)
    with pytest.raises(SecureProductError, match="row count"):
        share_b_result(share_b, np.zeros((9, 3), np.uint64), np.zeros((10, 2), np.uint64))
    with pytest.raises(SecureProductError, match="shapes differ"):
        combine(np.zeros((3, 2), np.uint64), np.zeros((2, 3), np.uint64))
    with pytest.raises(SecureProductError, match="positive integer"):
        deal(0, 3, 2)
    with pytest.raises(SecureProductError, match="MAX_ROWS"):
        deal(sp.MAX_ROWS + 1, 1, 1)


# --------------------------------------------------------------------------- what each side sees


def test_masked_label_column_carries_no_signal() -> None:
    rng = np.random.default_rng(4)
    n = 20000
    y = (rng.random(n) < 0.3).astype(np.float64)
    x = y * 2.0 + rng.normal(0.0, 0.5, n)  # a feature of A that predicts the label
    q = np.column_stack([y, rng.normal(size=n)])
    p = np.column_stack([x, rng.normal(size=n)])
    qe, pe = encode_fixed(q), encode_fixed(p)
    share_a, share_b = deal(n, 2, 2)
    seen_by_a = mask_b(qe, share_b)[:, 0].view(np.int64) / 2.0**FRACTION_BITS
    seen_by_b = mask_a(pe, share_a)[:, 0].view(np.int64) / 2.0**FRACTION_BITS
    assert abs(roc_auc_score(y, seen_by_a) - 0.5) < 0.03
    assert abs(roc_auc_score(y, seen_by_b) - 0.5) < 0.03
    # Control: with R_b = 0 (q itself) the label column gives the label away, and so does x.
    assert roc_auc_score(y, qe[:, 0].view(np.int64) / 2.0**FRACTION_BITS) == 1.0
    assert roc_auc_score(y, pe[:, 0].view(np.int64) / 2.0**FRACTION_BITS) > 0.95


def _byte_uniformity_p(a: np.ndarray) -> float:
    counts = np.bincount(np.frombuffer(a.tobytes(), dtype=np.uint8), minlength=256)
    return float(chisquare(counts).pvalue)


def test_masked_matrices_are_uniform_bytes() -> None:
    rng = np.random.default_rng(5)
    p, q = _data(rng, 4000, 3, 2)
    out = _protocol(p, q)
    assert _byte_uniformity_p(out["masked_a"]) > FALSE_ALARM
    assert _byte_uniformity_p(out["masked_b"]) > FALSE_ALARM
    # Control: the unmasked encodings are far from uniform bytes.
    assert _byte_uniformity_p(out["pe"]) < FALSE_ALARM
    assert _byte_uniformity_p(out["qe"]) < FALSE_ALARM


# --------------------------------------------------------------------------- the PRG


def test_mask_matrix_is_the_aes_ctr_keystream() -> None:
    key, other = os.urandom(32), os.urandom(32)
    m = mask_matrix(key, (2, 4))  # 64 bytes = 4 AES blocks
    assert m.dtype == np.uint64 and m.shape == (2, 4)
    np.testing.assert_array_equal(m, mask_matrix(key, (2, 4)))
    assert not np.array_equal(m, mask_matrix(other, (2, 4)))

    def ecb_counter_blocks(k: bytes) -> bytes:
        enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
        return enc.update(b"".join(i.to_bytes(16, "big") for i in range(4))) + enc.finalize()

    assert m.astype("<u8").tobytes() == ecb_counter_blocks(key)
    assert m.astype("<u8").tobytes() != ecb_counter_blocks(other)  # control
    # A longer matrix starts with the same keystream (row-major).
    assert np.array_equal(mask_matrix(key, (4, 4))[:2], m)


@pytest.mark.parametrize("key", [b"", os.urandom(16), os.urandom(33), "x" * 32])
def test_mask_matrix_refuses_keys_that_are_not_32_bytes(key: object) -> None:
    with pytest.raises(SecureProductError, match="32 bytes"):
        mask_matrix(key, (2, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- encoding


def test_encoding_round_trips_and_bounds() -> None:
    a = np.array([[-MAX_ABS_VALUE, -1.5, 0.0], [1e-5, 2.25, MAX_ABS_VALUE]])
    enc = encode_fixed(a)
    assert enc.dtype == np.uint64
    np.testing.assert_array_equal(enc.view(np.int64), np.rint(a * 2**16).astype(np.int64))
    assert MAX_ABS_VALUE == 32.0 and sp.MAX_ROWS == 2**20
    # The documented bound: MAX_ROWS products of two extreme encodings stay below 2^63.
    assert sp.MAX_ROWS * int(enc.view(np.int64).max()) ** 2 + int(MAX_NOISE_ABS * 2**32) < 2**63
    np.testing.assert_array_equal(
        decode_product(encode_noise(np.array([-3.5, 7.25]))), [-3.5, 7.25]
    )


@pytest.mark.parametrize(
    "bad, rule",
    [
        (np.array([[1.0, 123.4567]]), "MAX_ABS_VALUE"),
        (np.array([[-32.001]]), "MAX_ABS_VALUE"),
        (np.array([[np.nan, 1.0]]), "NaN or infinity"),
        (np.array([[np.inf]]), "NaN or infinity"),
        (np.array([["a"]]), "not numbers"),
    ],
)
def test_encoding_refuses_unsafe_values(bad: np.ndarray, rule: str) -> None:
    with pytest.raises(SecureProductError, match=rule) as err:
        encode_fixed(bad)
    msg = str(err.value)
    assert "\n" not in msg and "123" not in msg and "32.001" not in msg
    assert isinstance(err.value, ConfideError)


def test_noise_bound_is_enforced() -> None:
    encode_noise(np.array([MAX_NOISE_ABS]))
    with pytest.raises(SecureProductError, match="MAX_NOISE_ABS"):
        encode_noise(np.array([MAX_NOISE_ABS * 2]))
    with pytest.raises(SecureProductError, match="NaN"):
        encode_noise(np.array([np.nan]))


# --------------------------------------------------------------------------- pair channel


def _pair(run_id: str = "run-7") -> tuple[PairChannel, PairChannel]:
    sa, pa = PairChannel.generate()
    sb, pb = PairChannel.generate()
    a = PairChannel(sa, pb, run_id, ("feature", "label"))
    b = PairChannel(sb, pa, run_id, ("label", "feature"))
    return a, b


def test_pair_channel_round_trip_and_same_key() -> None:
    a, b = _pair()
    assert a.fingerprint == b.fingerprint
    m = np.arange(12, dtype=np.uint64).reshape(3, 4) * np.uint64(2**61)
    blob = a.seal(m, "masked_a")
    assert blob.dtype == np.uint8 and blob.size == 12 + m.nbytes + 16
    np.testing.assert_array_equal(b.open(blob, "masked_a", np.uint64, (3, 4)), m)
    back = b.seal(np.array([1.5, -2.0]), "share")
    np.testing.assert_array_equal(a.open(back, "share", np.float64, (2,)), [1.5, -2.0])
    assert a.seal(m, "masked_a").tobytes() != blob.tobytes()  # fresh nonce
    assert "key=" in repr(a) and a.fingerprint in repr(a)


def test_pair_channel_refuses_tamper_label_run_shape_and_reflection() -> None:
    a, b = _pair()
    m = np.arange(6, dtype=np.uint64).reshape(2, 3)
    blob = a.seal(m, "masked_a")
    tampered = blob.copy()
    tampered[20] ^= 1
    with pytest.raises(SecureProductError, match="failed authentication"):
        b.open(tampered, "masked_a", np.uint64, (2, 3))
    with pytest.raises(SecureProductError, match="failed authentication"):
        b.open(blob, "masked_b", np.uint64, (2, 3))
    with pytest.raises(SecureProductError, match="failed authentication"):
        b.open(blob, "masked_a", np.uint64, (3, 2))  # same size, other shape
    with pytest.raises(SecureProductError, match="expected length"):
        b.open(blob, "masked_a", np.uint64, (2, 4))
    with pytest.raises(SecureProductError, match="failed authentication"):
        b.open(blob, "masked_a", np.int64, (2, 3))
    with pytest.raises(SecureProductError, match="failed authentication"):
        a.open(blob, "masked_a", np.uint64, (2, 3))  # reflected back to its sender
    # Another run id with the same key pairs derives another key.
    sa, pa = PairChannel.generate()
    sb, pb = PairChannel.generate()
    a1 = PairChannel(sa, pb, "run-1", ("feature", "label"))
    b2 = PairChannel(sb, pa, "run-2", ("label", "feature"))
    assert a1.fingerprint != b2.fingerprint
    with pytest.raises(SecureProductError, match="failed authentication"):
        b2.open(a1.seal(m, "masked_a"), "masked_a", np.uint64, (2, 3))
    # Control: the untouched message opens.
    np.testing.assert_array_equal(b.open(blob, "masked_a", np.uint64, (2, 3)), m)


def test_a_third_party_cannot_open() -> None:
    sa, pa = PairChannel.generate()
    sb, pb = PairChannel.generate()
    sc, _ = PairChannel.generate()
    a = PairChannel(sa, pb, "r", ("feature", "label"))
    b = PairChannel(sb, pa, "r", ("label", "feature"))
    # The relay knows both public keys but holds its own secret only.
    relay = PairChannel(sc, pa, "r", ("label", "feature"))
    blob = a.seal(np.ones(4), "x")
    with pytest.raises(SecureProductError, match="failed authentication"):
        relay.open(blob, "x", np.float64, (4,))
    np.testing.assert_array_equal(b.open(blob, "x", np.float64, (4,)), np.ones(4))  # control


def test_small_order_peer_keys_are_refused() -> None:
    s, _ = PairChannel.generate()
    with pytest.raises(SecureProductError, match="small order"):
        PairChannel(s, bytes(32), "r", ("feature", "label"))
    with pytest.raises(SecureProductError, match="small order"):
        PairChannel(s, (1).to_bytes(32, "little"), "r", ("feature", "label"))
    with pytest.raises(SecureProductError, match="32 bytes"):
        PairChannel(s, bytes(31), "r", ("feature", "label"))
    with pytest.raises(SecureProductError, match="roles must differ"):
        PairChannel(s, PairChannel.generate()[1], "r", ("label", "label"))
    with pytest.raises(SecureProductError, match="only numeric"):
        _pair()[0].seal(np.array(["a"], dtype=object), "x")


def test_protocol_end_to_end_through_the_relay() -> None:
    """A and B exchange only sealed blobs; the relay (dealer) never sees a masked matrix."""
    rng = np.random.default_rng(6)
    p, q = _data(rng, 500, 3, 2)
    ch_a, ch_b = _pair("run-e2e")
    share_a, share_b = deal(500, 3, 2)
    # The dealer's shares travel in their wire form.
    share_a = DealerShareA.from_arrays(share_a.to_arrays(), shape=(3, 2))
    share_b = DealerShareB.from_arrays(share_b.to_arrays(), shape=(3, 2))
    pe, qe = encode_fixed(p), encode_fixed(q)
    to_b = ch_a.seal(mask_a(pe, share_a), "masked_a")
    to_a = ch_b.seal(mask_b(qe, share_b), "masked_b")
    masked_b = ch_a.open(to_a, "masked_b", np.uint64, (500, 2))
    res_to_b = ch_a.seal(share_a_result(share_a, masked_b), "share_a")
    masked_a = ch_b.open(to_b, "masked_a", np.uint64, (500, 3))
    res_a = ch_b.open(res_to_b, "share_a", np.uint64, (3, 2))
    got = combine(res_a, share_b_result(share_b, masked_a, qe))
    np.testing.assert_array_equal(got.view(np.int64), pe.view(np.int64).T @ qe.view(np.int64))


# --------------------------------------------------------------------------- dealer shares


def test_dealer_shares_round_trip_on_the_wire() -> None:
    share_a, share_b = deal(20, 3, 2)
    wa, wb = share_a.to_arrays(), share_b.to_arrays()
    assert set(wa) == {"key", "t"} and set(wb) == {"key", "u"}
    assert wa["key"].dtype == np.uint8 and wa["key"].shape == (32,)
    back_a, back_b = DealerShareA.from_arrays(wa), DealerShareB.from_arrays(wb, shape=(3, 2))
    assert back_a.key_a == share_a.key_a and back_b.key_b == share_b.key_b
    np.testing.assert_array_equal(back_a.t, share_a.t)
    np.testing.assert_array_equal(back_b.u, share_b.u)
    assert share_a.key_a.hex() not in repr(share_a) and share_b.key_b.hex() not in repr(share_b)
    # Correlation: u + t = R_a^T R_b.
    r_a, r_b = mask_matrix(share_a.key_a, (20, 3)), mask_matrix(share_b.key_b, (20, 2))
    np.testing.assert_array_equal(share_b.u + share_a.t, sp._tmatmul(r_a, r_b))
    assert share_a.key_a != share_b.key_b


def test_dealer_shares_refuse_bad_wire_arrays() -> None:
    share_a, _ = deal(5, 2, 2)
    good = share_a.to_arrays()
    cases = [
        ({**good, "t": good["t"].astype(np.int64)}, "2-D uint64"),
        ({**good, "t": good["t"].astype(">u8")}, "2-D uint64"),
        ({**good, "t": good["t"].ravel()}, "2-D uint64"),
        ({**good, "key": good["key"][:31]}, "32 uint8"),
        ({**good, "key": good["key"].astype(np.uint16)}, "32 uint8"),
        ({"key": good["key"]}, "exactly the arrays"),
        ({**good, "extra": good["t"]}, "exactly the arrays"),
    ]
    for arrays, rule in cases:
        with pytest.raises(SecureProductError, match=rule):
            DealerShareA.from_arrays(arrays)
    with pytest.raises(SecureProductError, match="expected shape"):
        DealerShareA.from_arrays(good, shape=(2, 3))
    with pytest.raises(SecureProductError, match="32 bytes"):
        DealerShareB(key_b=b"short", u=np.zeros((2, 2), np.uint64))
    DealerShareA.from_arrays(good, shape=(2, 2))  # control
