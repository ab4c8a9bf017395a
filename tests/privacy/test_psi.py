"""Private set intersection: exact matches, normalisation, no ID in any message, unlinkable runs.

Every property check has a control case where it fails (an unkeyed variant is caught, the same
seed and run do link, a valid element is accepted).
"""

from __future__ import annotations

import copy
import hashlib
import pickle
import random

import numpy as np
import pandas as pd
import pytest

from confide.core.errors import ConfideError
from confide.privacy import psi, psi_group
from confide.privacy.psi import (
    ELEMENT_SIZE,
    PsiError,
    PsiParty,
    dummy_elements,
    intersect,
    normalise_id,
    normalise_ids,
    shuffled,
)

SEED_L, SEED_F = b"L" * 32, b"F" * 32


def _ids(prefix: str, lo: int, hi: int) -> list[str]:
    return [f"{prefix}{k:07d}" for k in range(lo, hi)]


def run_protocol(l_ids, f_ids, *, run_id="run-A", pad_l=0, pad_f=0, workers=1):
    """The docs/vertical.md exchange: returns (m1, m2, m3, m4) and the matched index pairs."""
    label, feature = PsiParty(run_id, workers=workers), PsiParty(run_id, workers=workers)
    m1 = label.blind(l_ids) + dummy_elements(pad_l)  # L -> F
    m2 = feature.reblind(m1)  # F -> L
    f_order, perm = shuffled(f_ids)
    m3 = feature.blind(f_order) + dummy_elements(pad_f)  # F -> L
    m4 = label.reblind(m3)  # at L
    i, j = intersect(m2, m4)
    return (m1, m2, m3, m4), i, j, perm


@pytest.mark.parametrize(
    ("n_l", "n_f", "overlap"),
    [(40, 30, 0), (50, 50, 50), (200, 150, 70), (1, 300, 1)],
)
def test_exact_intersection_through_the_protocol_with_padding(n_l, n_f, overlap):
    rng = random.Random(n_l * 1000 + overlap)
    shared = _ids("S", 0, overlap)
    l_ids = shared + _ids("L", 0, n_l - overlap)
    f_ids = shared + _ids("F", 0, n_f - overlap)
    rng.shuffle(l_ids)
    rng.shuffle(f_ids)
    msgs, i, j, perm = run_protocol(l_ids, f_ids, pad_l=17, pad_f=23)
    assert [len(m) for m in msgs] == [
        (n_l + 17) * ELEMENT_SIZE,
        (n_l + 17) * ELEMENT_SIZE,
        (n_f + 23) * ELEMENT_SIZE,
        (n_f + 23) * ELEMENT_SIZE,
    ]
    pairs = [(l_ids[a], f_ids[perm[b]]) for a, b in zip(i, j, strict=True)]
    assert all(x == y for x, y in pairs)
    assert sorted(x for x, _ in pairs) == sorted(shared)
    assert list(i) == sorted(i)
    assert (i < n_l).all() and (j < n_f).all()  # dummies never match


def test_full_width_and_whitespace_variants_match():
    assert normalise_id("ＡＢＣ１２３") == normalise_id(" ABC123 ") == "ABC123"
    assert normalise_id("\u3000ABC123\t") == "ABC123"  # ideographic space
    l_ids = ["ＡＢＣ１２３", "X1", "Y2"]
    f_ids = ["Z9", " ABC123 \u3000", "y2"]  # case is not folded: Y2 and y2 differ
    _, i, j, perm = run_protocol(l_ids, f_ids)
    assert list(i) == [0]
    assert f_ids[perm[j[0]]] == " ABC123 \u3000"


def test_normalise_ids_counts_and_never_values():
    values = ["A1", "", None, float("nan"), " \u3000 ", "B2", "Ｂ２", "A1", "SECRET-ID"]
    with pytest.raises(PsiError) as err:
        normalise_ids(values, source="bank", column="customer_id")
    assert str(err.value) == (
        "bank: join key 'customer_id' has 4 empty and 2 duplicated values (rule: join-key)"
    )
    assert isinstance(err.value, ConfideError)
    series = pd.Series(["A1", pd.NA, "A1 "], dtype="string")
    with pytest.raises(PsiError, match="has 1 empty and 1 duplicated values"):
        normalise_ids(series, source="ecommerce", column="customer_id")
    with pytest.raises(PsiError, match=r"has 1 non-text, 0 empty and 0 duplicated"):
        normalise_ids(["A1", 2.5], source="bank", column="customer_id")
    # the control: clean input passes, integers are written in decimal, order is kept
    clean = pd.Series([" Ｃ３", "A1", 7])
    assert normalise_ids(clean, source="bank", column="customer_id") == ["C3", "A1", "7"]
    with pytest.raises(PsiError, match="empty after normalisation"):
        normalise_id("\u3000 ")


def test_blind_refuses_duplicates_after_normalisation():
    party = PsiParty("run-A", workers=1)
    with pytest.raises(PsiError, match="1 join-key values are duplicated") as err:
        party.blind(["ＡＢ", "AB"])
    assert "AB" not in str(err.value)


def _unkeyed_forms(ident: str, run_id: str) -> list[bytes]:
    norm = normalise_id(ident).encode()
    forms = [norm, ident.encode()]
    for algo in ("sha256", "sha512", "md5"):
        digest = hashlib.new(algo, norm)
        forms += [digest.digest(), digest.hexdigest().encode()]
    # the group hash itself, without any secret exponent
    forms += psi_group.hash_to_group(psi_group.hash_prefix(run_id), [normalise_id(ident)])
    return forms


def _leaks(message: bytes, forms: list[bytes]) -> bool:
    return any(f in message for f in forms)


def test_canary_ids_appear_in_no_message():
    canaries = ["CANARY-7f3a91", "ＣＡＮＡＲＹ-2"]
    l_ids = [*canaries, *_ids("L", 0, 60)]
    f_ids = [canaries[0], *_ids("F", 0, 40)]
    msgs, i, _, _ = run_protocol(l_ids, f_ids, run_id="run-canary", pad_l=5, pad_f=5)
    assert len(i) == 1
    forms = [f for c in canaries for f in _unkeyed_forms(c, "run-canary")]
    assert not any(_leaks(m, forms) for m in msgs)
    # the control: an unkeyed variant (blinding disabled) of the same messages is caught
    prefix = psi_group.hash_prefix("run-canary")
    unblinded = b"".join(psi_group.hash_to_group(prefix, [normalise_id(x) for x in l_ids]))
    assert _leaks(unblinded, forms)
    sha_only = b"".join(hashlib.sha256(normalise_id(x).encode()).digest() for x in l_ids)
    assert _leaks(sha_only, forms)


def test_runs_and_secrets_are_unlinkable():
    ids = _ids("C", 0, 50)

    def elements(run_id: str, seed: bytes) -> set[bytes]:
        m = PsiParty.from_seed(run_id, seed, workers=1).blind(ids)
        return {m[k : k + ELEMENT_SIZE] for k in range(0, len(m), ELEMENT_SIZE)}

    base = elements("run-1", SEED_L)
    assert len(base) == 50
    assert not base & elements("run-2", SEED_L)  # same secret, another run
    assert not base & elements("run-1", SEED_F)  # same run, another secret
    assert not base & elements("run-1", b"\x00" * 32)
    fresh = [PsiParty("run-1", workers=1).blind(ids[:5]) for _ in range(2)]
    assert fresh[0] != fresh[1]  # fresh secrets differ
    # the control: the same seed and run give the same elements (from_seed is deterministic)
    assert elements("run-1", SEED_L) == base


def test_party_refuses_pickle_and_copy_and_hides_its_secret():
    party = PsiParty.from_seed("run-A", SEED_L, workers=1)
    secret = party._PsiParty__secret  # the control: the secret is there, 32 bytes
    assert isinstance(secret, bytes) and len(secret) == 32
    text = repr(party) + str(party)
    assert secret.hex() not in text and repr(secret) not in text and "hidden" in text
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot be pickled or copied"):
            attempt(party)
    assert not hasattr(party, "__dict__")
    with pytest.raises(PsiError, match="at least 32 bytes"):
        PsiParty.from_seed("run-A", b"short")
    with pytest.raises(PsiError, match="run_id"):
        PsiParty("")


def test_reblind_refuses_malformed_elements():
    party = PsiParty("run-A", workers=1)
    good = dummy_elements(3)
    assert len(party.reblind(good)) == 3 * ELEMENT_SIZE  # the control: valid input passes
    p = 2**255 - 19
    bad = {
        "not a multiple": good[:-1],
        "top bit": good[:32] + bytes(31) + b"\x80",
        "u = p": p.to_bytes(32, "little"),
        "u = p + 1": (p + 1).to_bytes(32, "little"),
    }
    for name, data in bad.items():
        with pytest.raises(PsiError, match="rule: psi-element"):
            party.reblind(data)
        assert name  # every case raised
    for small_order in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(PsiError, match="small order"):
            party.reblind(good + small_order)
    with pytest.raises(PsiError):
        party.reblind("text")  # type: ignore[arg-type]


def test_intersect_sorts_by_own_index_and_refuses_repeats():
    e = [bytes([k]) * 32 for k in range(1, 6)]
    own = b"".join([e[3], e[0], e[4], e[1]])
    other = b"".join([e[1], e[2], e[3], e[4]])
    i, j = intersect(own, other)
    assert i.tolist() == [0, 2, 3] and j.tolist() == [2, 3, 0]
    with pytest.raises(PsiError, match="repeats an element"):
        intersect(own + e[0], other)
    empty_i, empty_j = intersect(b"", other)
    assert empty_i.size == 0 and empty_j.size == 0


def test_intersect_is_exact_when_the_8_byte_keys_collide():
    head = b"\xaa" * 8
    own = [head + bytes([k]) * 24 for k in range(4)]  # one 8-byte key, four elements
    other = [head + bytes([9]) * 24, own[2], b"\x01" * 32, own[0]]
    i, j = intersect(b"".join(own), b"".join(other))
    assert i.tolist() == [0, 2] and j.tolist() == [3, 1]
    # a key shared across the lists with different tails is no match
    i, j = intersect(b"".join(own[:2]), head + b"\x07" * 24)
    assert i.size == 0
    with pytest.raises(PsiError, match="repeats an element"):
        intersect(b"".join([*own, own[1]]), b"".join(other))


def test_worker_processes_give_the_in_process_result(monkeypatch):
    ids = _ids("W", 0, 30)
    one = PsiParty.from_seed("run-W", SEED_L, workers=1)
    m1 = one.blind(ids)
    monkeypatch.setattr(psi, "PARALLEL_MIN", 4)
    two = PsiParty.from_seed("run-W", SEED_L, workers=2)
    assert psi._bounds(30, 2) == [(0, 15), (15, 30)]
    assert two.blind(ids) == m1
    assert two.reblind(m1) == one.reblind(m1)
    # a small-order element in the worker's half fails there and surfaces as a PsiError
    with pytest.raises(PsiError, match="small order"):
        two.reblind(m1[: 29 * ELEMENT_SIZE] + bytes(32))
    # a worker that dies is an error, never a silent in-process retry
    monkeypatch.setattr(psi, "_WORKER", "import sys; sys.exit(3)")
    with pytest.raises(PsiError, match="rule: psi-workers"):
        two.reblind(m1)


def test_shuffled_is_a_permutation_and_dummies_are_valid():
    ids = _ids("P", 0, 100)
    out, perm = shuffled(ids, rng_seed=b"s" * 32)
    assert [ids[k] for k in perm] == out and sorted(perm.tolist()) == list(range(100))
    assert out != ids
    assert shuffled(ids, rng_seed=b"s" * 32)[0] == out
    d = dummy_elements(4)
    assert len(d) == 4 * ELEMENT_SIZE and psi_group.malformed_count(d) == 0
    assert len(set(np.frombuffer(d, dtype="S32").tolist())) == 4
    with pytest.raises(PsiError):
        dummy_elements(-1)


def test_batches_inside_a_chunk_give_the_per_element_result(monkeypatch):
    ids = _ids("B", 0, 23)
    party = PsiParty.from_seed("run-B", SEED_F, workers=1)
    whole = party.blind(ids)
    again = party.reblind(whole)
    monkeypatch.setattr(psi_group, "BATCH", 5)  # 23 = 4 full batches and one of 3
    assert party.blind(ids) == whole
    assert party.reblind(whole) == again
    singles = b"".join(party.blind([i]) for i in ids)
    assert singles == whole  # the control: one call per element gives the same bytes
