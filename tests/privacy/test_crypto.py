import base64
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.privacy import (
    DecryptionError,
    Keyring,
    TransformError,
    decrypt_series,
    encrypt_deterministic_series,
    encrypt_randomized_series,
    pseudonymize_series,
    rotate_series,
)
from confide.privacy.encryption import _gcm_ad, _gcm_seal

ENCRYPT = {"deterministic": encrypt_deterministic_series, "randomized": encrypt_randomized_series}
EMAILS = pd.Series([f"user{i}@example.com" for i in range(40)])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


def _enc(mode, s, ring, ds="ds", col="email", **kw):
    if mode == "deterministic":
        kw.setdefault("check", False)
    return ENCRYPT[mode](s, ring, ds, col, **kw)


def _b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
def test_round_trip_and_token_format(keyring, mode):
    tok = _enc(mode, EMAILS, keyring)
    prefix = {"deterministic": "d1.k1.", "randomized": "r1.k1."}[mode]
    assert tok.str.startswith(prefix).all()
    assert not tok.str.contains("example").any()
    pd.testing.assert_series_equal(
        decrypt_series(tok, keyring, "ds", "email"), EMAILS, check_dtype=False
    )


def test_randomized_uses_fresh_nonces(keyring):
    tok = encrypt_randomized_series(pd.Series(["same"] * 200), keyring, "ds", "c")
    assert tok.nunique() == 200
    assert tok.str.split(".").str[2].nunique() == 200
    assert (tok.str.split(".").str[2].str.len() == 16).all()  # 96-bit nonce


def test_deterministic_and_pseudonyms_are_stable(keyring):
    a = encrypt_deterministic_series(EMAILS, keyring, "ds", "email")
    assert a.equals(encrypt_deterministic_series(EMAILS, keyring, "ds", "email"))
    p = pseudonymize_series(EMAILS, keyring, "ds", "email")
    assert p.str.fullmatch(r"p1\.k1\.[A-Za-z0-9_-]{22}").all()
    assert p.nunique() == len(EMAILS)


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
def test_wrong_key(keyring, other_keyring, mode):
    tok = _enc(mode, EMAILS, keyring)
    with pytest.raises(DecryptionError) as err:
        decrypt_series(tok, other_keyring, "ds", "email")
    assert "decryption failed" in str(err.value) and "user" not in str(err.value)


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
def test_tampered_ciphertext(keyring, mode):
    tok = _enc(mode, EMAILS, keyring).tolist()
    t = tok[0]
    flipped = t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:]
    with pytest.raises(DecryptionError):
        decrypt_series(pd.Series([flipped]), keyring, "ds", "email")


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
@pytest.mark.parametrize("cut", [1, 4, 20])
def test_truncated_token(keyring, mode, cut):
    t = _enc(mode, EMAILS, keyring).iloc[0]
    with pytest.raises(DecryptionError):
        decrypt_series(pd.Series([t[:-cut]]), keyring, "ds", "email")


@pytest.mark.parametrize(
    "junk",
    [
        "r1.k1",
        "d1.k1.",
        "x1.k1.AAAA",
        "r1.k1.AAAA",
        "garbage",
        "d1.k9.AAAAAAAAAAAAAAAAAAAAAAAA",
        "r1.k1.@@@.AAAA",
        "d1.k1.A=",
    ],
)
def test_malformed_tokens_are_opaque(keyring, junk):
    with pytest.raises(DecryptionError) as err:
        decrypt_series(pd.Series([junk]), keyring, "ds", "c")
    other = pytest.raises(DecryptionError)
    with other as err2:
        decrypt_series(
            pd.Series(["r1.k1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"]), keyring, "ds", "c"
        )
    assert str(err.value) == str(err2.value)  # one message for every failure


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
def test_moved_to_another_column_or_dataset(keyring, mode):
    tok = _enc(mode, EMAILS, keyring, ds="ds", col="email")
    with pytest.raises(DecryptionError):
        decrypt_series(tok, keyring, "ds", "backup_email")
    with pytest.raises(DecryptionError):
        decrypt_series(tok, keyring, "other_ds", "email")


def test_mode_mismatch_refused(keyring):
    tok = _enc("randomized", EMAILS, keyring)
    with pytest.raises(DecryptionError):
        decrypt_series(tok, keyring, "ds", "email", mode="deterministic")


def test_nonce_of_wrong_size_refused(keyring):
    aead = AESGCM(keyring.subkey("gcm", "ds", "c", "k1"))
    ad = _gcm_ad("ds", "c", "k1")
    for size in (8, 11, 13, 16):
        nonce = os.urandom(size)
        ct = aead.encrypt(nonce, b"secret", ad)  # valid GCM under the right key...
        token = f"r1.k1.{_b64(nonce)}.{_b64(ct)}"
        with pytest.raises(DecryptionError):  # ...but not a 96-bit nonce: refused
            decrypt_series(pd.Series([token]), keyring, "ds", "c")
        with pytest.raises(ValueError, match="96 bits"):
            _gcm_seal(aead, nonce, b"secret", ad)


@pytest.mark.parametrize("fn", ["pseudonymize", "deterministic", "randomized"])
def test_nulls_stay_null(keyring, fn):
    s = pd.Series(["a@x.com", None, np.nan, pd.NA, "", "b@x.com"], dtype=object)
    if fn == "pseudonymize":
        out = pseudonymize_series(s, keyring, "ds", "c")
    else:
        out = _enc(fn, s, keyring, col="c")
    assert out.isna().tolist() == [False, True, True, True, True, False]
    if fn != "pseudonymize":
        back = decrypt_series(out, keyring, "ds", "c")
        assert back.isna().tolist() == [False, True, True, True, True, False]


@pytest.mark.parametrize("fn", ["pseudonymize", "deterministic", "randomized"])
def test_non_string_values_rule(keyring, fn):
    def run(s):
        if fn == "pseudonymize":
            return pseudonymize_series(s, keyring, "ds", "c")
        return _enc(fn, s, keyring, col="c")

    # integers are cast to their decimal string
    ints = run(pd.Series([7, 8, None], dtype="Int64"))
    strs = run(pd.Series(["7", "8", None]))
    assert ints.isna().tolist() == [False, False, True]
    if fn != "randomized":
        assert ints.tolist()[:2] == strs.tolist()[:2]
    if fn == "pseudonymize":  # one-way tokens under the active key, one per distinct value
        assert [t.split(".")[:2] for t in ints.tolist()[:2]] == [["p1", "k1"], ["p1", "k1"]]
        assert ints.iloc[0] != ints.iloc[1] and not {"7", "8"} & set(ints.tolist()[:2])
        with pytest.raises(DecryptionError):
            decrypt_series(ints.iloc[:2], keyring, "ds", "c")
    else:
        assert decrypt_series(ints, keyring, "ds", "c").tolist()[:2] == ["7", "8"]
    assert run(pd.Series([1, "2"], dtype=object)).notna().all()
    # floats, bools, bytes are refused with the column named, never silently NaN
    for bad in (
        pd.Series([1.5, 2.0]),
        pd.Series([True, False]),
        pd.Series([b"x"], dtype=object),
        pd.Series(["a", 1.5], dtype=object),
        pd.Series([pd.Timestamp("2024-01-01")]),
    ):
        with pytest.raises(TransformError) as err:
            run(bad)
        assert "column 'c'" in str(err.value) and "VALUE-TYPE" in str(err.value)
    assert run(pd.Series([np.nan, np.nan])).isna().all()  # all-NaN float column is all null


def test_full_width_digits_and_normal_forms(keyring):
    ascii_, full = "13800138000", "１３８００１３８０００"
    p = pseudonymize_series(pd.Series([ascii_, full]), keyring, "ds", "m")
    assert p.iloc[0] == p.iloc[1]
    word = "Café Ｔｅｓｔ"
    forms = [unicodedata.normalize(f, word) for f in ("NFC", "NFD", "NFKC", "NFKD")]
    assert len(set(forms)) == 4
    p = pseudonymize_series(pd.Series(forms), keyring, "ds", "n")
    assert p.nunique() == 1
    d = encrypt_deterministic_series(pd.Series(forms), keyring, "ds", "n", check=False)
    assert d.nunique() == 1
    assert decrypt_series(d, keyring, "ds", "n").iloc[0] == unicodedata.normalize("NFKC", word)
    # randomized encryption returns the exact input form
    r = encrypt_randomized_series(pd.Series(forms), keyring, "ds", "n")
    assert decrypt_series(r, keyring, "ds", "n").tolist() == forms


def test_pseudonyms_differ_across_keys_columns_datasets(keyring, other_keyring):
    s = pd.Series(["alice"])
    base = pseudonymize_series(s, keyring, "ds", "c").iloc[0]
    assert base != pseudonymize_series(s, other_keyring, "ds", "c").iloc[0]
    assert base != pseudonymize_series(s, keyring, "ds", "c2").iloc[0]
    assert base != pseudonymize_series(s, keyring, "ds2", "c").iloc[0]


def test_pseudonyms_stable_across_processes(tmp_path):
    from confide.privacy import new_keyring_file

    p = tmp_path / "k.json"
    new_keyring_file(p)
    code = (
        "import sys, pandas as pd; from confide.privacy import Keyring, pseudonymize_series; "
        "r = Keyring.load(sys.argv[1]); "
        "print(pseudonymize_series(pd.Series(['alice', '42']), r, 'ds', 'c').str.cat(sep=','))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code, str(p)], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(outs) == 1
    ring = Keyring.load(p)
    assert next(iter(outs)).strip() == pseudonymize_series(
        pd.Series(["alice", "42"]), ring, "ds", "c"
    ).str.cat(sep=",")


def test_low_cardinality_refused(keyring):
    gender = pd.Series(["F", "M"] * 500)
    with pytest.raises(TransformError) as err:
        encrypt_deterministic_series(gender, keyring, "ds", "gender")
    msg = str(err.value)
    assert "DET-LOW-CARDINALITY" in msg and "column 'gender'" in msg and "'F'" not in msg
    province = pd.Series([f"p{i % 34}" for i in range(100_000)])  # 34 distinct: ratio too low
    with pytest.raises(TransformError, match="low-cardinality"):
        encrypt_deterministic_series(province, keyring, "ds", "province")
    encrypt_deterministic_series(
        pd.Series([f"e{i % 500}" for i in range(5000)]), keyring, "ds", "email"
    )  # 500 distinct, ratio 0.1: accepted


def test_rotation_keeps_old_tokens_readable(keyring):
    old = {
        "deterministic": _enc("deterministic", EMAILS, keyring),
        "randomized": _enc("randomized", EMAILS, keyring),
    }
    rotated_ring = Keyring({"k1": keyring._keys["k1"], "k2": os.urandom(32)}, "k2")
    for mode, tok in old.items():
        assert decrypt_series(tok, rotated_ring, "ds", "email").tolist() == EMAILS.tolist()
        new = rotate_series(tok, rotated_ring, "ds", "email", mode)
        assert new.str.startswith(f"{tok.iloc[0][:2]}.k2.").all()
        assert decrypt_series(new, rotated_ring, "ds", "email").tolist() == EMAILS.tolist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(TEXT, st.none()), min_size=1, max_size=15))
def test_property_randomized_round_trip(values):
    ring = Keyring({"k1": b"\x01" * 32}, "k1")
    s = pd.Series(values, dtype=object)
    back = decrypt_series(encrypt_randomized_series(s, ring, "ds", "c"), ring, "ds", "c")
    expected = [None if v is None or v == "" else v for v in values]
    assert [None if pd.isna(v) else v for v in back] == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=15))
def test_property_deterministic_round_trip_and_pseudonym_stability(values):
    ring = Keyring({"k1": b"\x02" * 32}, "k1")
    s = pd.Series(values, dtype=object)
    enc = encrypt_deterministic_series(s, ring, "ds", "c", check=False)
    back = decrypt_series(enc, ring, "ds", "c")
    nfkc = pc.utf8_normalize(pa.array(values), "NFKC").to_pylist()  # Arrow's Unicode tables
    assert back.tolist() == nfkc
    p1 = pseudonymize_series(s, ring, "ds", "c")
    p2 = pseudonymize_series(s.iloc[::-1].reset_index(drop=True), ring, "ds", "c")
    assert p1.tolist() == p2.tolist()[::-1]
    norm = nfkc
    for i in range(len(values)):
        for j in range(len(values)):
            assert (p1[i] == p1[j]) == (norm[i] == norm[j])
