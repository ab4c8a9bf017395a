import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from confide.privacy import (
    KeyMaterialError,
    Keyring,
    SchemaError,
    TransformError,
    apply_file,
    apply_policy,
    decrypt_file,
    parse_policy,
    rotate_file,
)
from confide.privacy import apply as apply_mod


def _frame(n=300):
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "national_id": ["11010519491231002X"] * n,
            "mobile": [f"138{i:08d}" for i in range(n)],
            "email": [f"user{i % 150}@example.com" for i in range(n)],
            "bank_card": [f"6222{i:012d}" for i in range(n)],
            "age": [str(20 + i % 50) for i in range(n)],
            "monetary_12m": [f"{i * 1.5:.2f}" for i in range(n)],
            "province": [["广东省", "北京市", ""][i % 3] for i in range(n)],
            "churned": [str(i % 2) for i in range(n)],
        }
    )


def test_apply_policy_transforms_and_order(policy, keyring):
    df = _frame()
    out = apply_policy(df, policy, keyring, "data.csv")
    assert list(out.columns) == policy.output_columns
    assert "national_id" not in out.columns
    assert out["customer_id"].str.startswith("p1.k1.").all()
    assert out["mobile"].iloc[1] == "138****0001"
    assert out["email"].str.startswith("d1.k1.").all()
    assert out["bank_card"].str.startswith("r1.k1.").all()
    assert out["age"].equals(df["age"])
    assert out["province"].iloc[2] == ""  # keep passes values through untouched


def test_missing_keyring_message(policy):
    with pytest.raises(KeyMaterialError) as err:
        apply_policy(_frame(), policy, None)
    msg = str(err.value)
    assert "column 'customer_id' needs a key (transform pseudonymize)" in msg
    assert "CONFIDE_KEYRING_FILE" in msg and "--keys" in msg


def test_schema_checked_first(policy, keyring):
    with pytest.raises(SchemaError, match="column 'shoe' is not listed"):
        apply_policy(_frame().assign(shoe="42"), policy, keyring, "data.csv")


def test_chunked_equals_single_pass(tmp_path, policy, keyring):
    src = tmp_path / "in.csv"
    _frame(1000).to_csv(src, index=False)
    one, many = tmp_path / "one.csv", tmp_path / "many.csv"
    s1 = apply_file(policy, src, one, keyring, chunksize=10_000)
    s2 = apply_file(policy, src, many, keyring, chunksize=77)
    assert (s1.chunks, s2.chunks, s2.rows) == (1, 13, 1000)
    a, b = pd.read_csv(one, dtype=str), pd.read_csv(many, dtype=str)
    det = [c for c in a.columns if c != "bank_card"]
    pd.testing.assert_frame_equal(a[det], b[det])
    assert not a["bank_card"].equals(b["bank_card"])  # randomized: fresh nonces
    d1, d2 = tmp_path / "d1.csv", tmp_path / "d2.csv"
    decrypt_file(policy, one, d1, keyring, chunksize=100)
    decrypt_file(policy, many, d2, keyring, chunksize=33)
    pd.testing.assert_frame_equal(pd.read_csv(d1, dtype=str), pd.read_csv(d2, dtype=str))
    back = pd.read_csv(d1, dtype=str, keep_default_na=False)
    orig = _frame(1000)
    assert back["bank_card"].tolist() == orig["bank_card"].tolist()
    assert back["email"].tolist() == orig["email"].tolist()


def test_apply_file_atomic_on_failure_mid_way(tmp_path, policy, keyring, monkeypatch):
    src = tmp_path / "in.csv"
    _frame(1000).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    calls = {"n": 0}
    real = apply_mod.transform_column

    def failing(s, col, *args, **kw):
        if col.name == "churned":  # last column of each chunk
            calls["n"] += 1
            if calls["n"] == 3:
                raise TransformError("injected failure in chunk 3")
        return real(s, col, *args, **kw)

    monkeypatch.setattr(apply_mod, "transform_column", failing)
    with pytest.raises(TransformError, match="injected"):
        apply_file(policy, src, out, keyring, chunksize=100)
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "policy.yaml"]
    # an existing output is left untouched by a failed run
    out.write_text("previous\n")
    calls["n"] = 0
    with pytest.raises(TransformError):
        apply_file(policy, src, out, keyring, chunksize=100)
    assert out.read_text() == "previous\n"


def test_bad_value_late_in_file_leaves_no_output(tmp_path, policy, keyring):
    df = _frame(1000)
    df.loc[950, "age"] = "not-a-number"
    assert policy.columns["age"].transform == "keep"
    mapping = yaml.safe_load(Path(policy.source).read_text(encoding="utf-8"))
    mapping["columns"]["age"]["transform"] = "generalize:age_band"
    pol2 = parse_policy(mapping, "p2.yaml")
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    with pytest.raises(TransformError) as err:
        apply_file(pol2, src, out, keyring, chunksize=100)
    assert "column 'age'" in str(err.value) and "not-a-number" not in str(err.value)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_low_cardinality_decided_over_whole_file(tmp_path, policy, keyring):
    df = _frame(1000)
    df["email"] = [f"u{i % 5}@x.com" for i in range(1000)]
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    with pytest.raises(TransformError, match="DET-LOW-CARDINALITY"):
        apply_file(policy, src, out, keyring, chunksize=100)
    assert not out.exists()
    with pytest.raises(TransformError, match="DET-LOW-CARDINALITY"):
        apply_policy(df, policy, keyring)
    assert list(df.columns) == list(policy.columns)  # apply_policy never mutates its input


def test_parquet_round_trip(tmp_path, policy, keyring):
    src, out, back = tmp_path / "in.parquet", tmp_path / "out.parquet", tmp_path / "b.parquet"
    df = _frame(200)
    df["age"] = df["age"].astype(int)
    df.to_parquet(src, index=False)
    apply_file(policy, src, out, keyring, chunksize=64)
    res = pd.read_parquet(out)
    assert list(res.columns) == policy.output_columns
    assert res["age"].dtype.kind == "i"
    decrypt_file(policy, out, back, keyring)
    assert pd.read_parquet(back)["bank_card"].tolist() == df["bank_card"].tolist()


def test_rotate_file(tmp_path, policy, keyring):
    src, out, rot = tmp_path / "in.csv", tmp_path / "out.csv", tmp_path / "rot.csv"
    _frame(100).to_csv(src, index=False)
    apply_file(policy, src, out, keyring)
    ring2 = Keyring({"k1": keyring._keys["k1"], "k2": os.urandom(32)}, "k2")
    rotate_file(policy, out, rot, ring2)
    r = pd.read_csv(rot, dtype=str)
    assert r["email"].str.startswith("d1.k2.").all()
    assert r["bank_card"].str.startswith("r1.k2.").all()
    assert r["customer_id"].str.startswith("p1.k1.").all()  # pseudonyms are one-way
    dec = tmp_path / "dec.csv"
    decrypt_file(policy, rot, dec, ring2)
    assert pd.read_csv(dec, dtype=str)["email"].tolist() == _frame(100)["email"].tolist()


def test_file_guards(tmp_path, policy, keyring):
    src = tmp_path / "in.csv"
    _frame(30).to_csv(src, index=False)
    with pytest.raises(Exception, match="rule: output is not an input"):
        apply_file(policy, src, src, keyring)
    with pytest.raises(SchemaError, match="file does not exist"):
        apply_file(policy, tmp_path / "nope.csv", tmp_path / "o.csv", keyring)
    with pytest.raises(SchemaError, match="do not match the output"):
        decrypt_file(policy, src, tmp_path / "o.csv", keyring)
    hdr = tmp_path / "empty.csv"
    hdr.write_text(",".join(policy.columns) + "\n")
    stats = apply_file(policy, hdr, tmp_path / "o.csv", keyring)
    assert stats.rows == 0
    empty = pd.read_csv(tmp_path / "o.csv")
    assert list(empty.columns) == policy.output_columns and len(empty) == 0
