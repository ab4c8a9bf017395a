import stat

import pandas as pd
import pytest
from typer.testing import CliRunner

from confide.privacy_cli import keys_app, privacy_app
from tests.privacy.customer_csv import write_customer_csv

runner = CliRunner()


_data = write_customer_csv


def _no_traceback(result):
    assert "Traceback" not in result.output and "Traceback" not in (result.stderr or "")


def test_keys_new_and_rotate(tmp_path):
    p = tmp_path / "k.json"
    r = runner.invoke(keys_app, ["new", str(p)])
    assert r.exit_code == 0, r.output
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert p.read_text() not in r.output
    r = runner.invoke(keys_app, ["new", str(p)])
    assert r.exit_code == 2 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    _no_traceback(r)
    r = runner.invoke(keys_app, ["rotate", str(p)])
    assert r.exit_code == 0 and "k2" in r.output


def test_apply_decrypt_rotate_cycle(tmp_path, policy_path):
    keys, data, out, dec, rot = (
        tmp_path / n for n in ("k.json", "d.csv", "o.csv", "dec.csv", "rot.csv")
    )
    _data(data)
    assert runner.invoke(keys_app, ["new", str(keys)]).exit_code == 0
    args = ["--policy", str(policy_path), "--data", str(data), "--out", str(out)]
    r = runner.invoke(privacy_app, ["apply", *args, "--keys", str(keys), "--chunksize", "7"])
    assert r.exit_code == 0, r.output + (r.stderr or "")
    assert "60 rows" in r.output
    r = runner.invoke(
        privacy_app,
        [
            "decrypt",
            "--policy",
            str(policy_path),
            "--data",
            str(out),
            "--out",
            str(dec),
            "--keys",
            str(keys),
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert pd.read_csv(dec, dtype=str)["email"].iloc[5] == "user5@example.com"
    assert runner.invoke(keys_app, ["rotate", str(keys)]).exit_code == 0
    r = runner.invoke(
        privacy_app,
        [
            "rotate",
            "--policy",
            str(policy_path),
            "--data",
            str(out),
            "--out",
            str(rot),
            "--keys",
            str(keys),
        ],
    )
    assert r.exit_code == 0, r.stderr
    assert pd.read_csv(rot, dtype=str)["email"].str.startswith("d1.k2.").all()


def test_apply_without_keys_is_one_line_exit_2(tmp_path, policy_path, monkeypatch):
    monkeypatch.delenv("CONFIDE_KEYRING", raising=False)
    monkeypatch.delenv("CONFIDE_KEYRING_FILE", raising=False)
    data = tmp_path / "d.csv"
    _data(data)
    r = runner.invoke(
        privacy_app,
        [
            "apply",
            "--policy",
            str(policy_path),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o.csv"),
        ],
    )
    assert r.exit_code == 2
    assert "needs a key" in r.stderr and r.stderr.count("\n") == 1
    _no_traceback(r)
    assert not (tmp_path / "o.csv").exists()


def test_apply_with_keyring_from_env(tmp_path, policy_path, monkeypatch):
    keys, data = tmp_path / "k.json", tmp_path / "d.csv"
    _data(data)
    runner.invoke(keys_app, ["new", str(keys)])
    monkeypatch.setenv("CONFIDE_KEYRING_FILE", str(keys))
    r = runner.invoke(
        privacy_app,
        ["apply", "-p", str(policy_path), "-d", str(data), "-o", str(tmp_path / "o.csv")],
    )
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize("text", ["", "version: [", "version: 1\n"])
def test_check_policy_errors(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    r = runner.invoke(privacy_app, ["check-policy", str(p)])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1
    _no_traceback(r)


def test_check_policy_ok(policy_path):
    r = runner.invoke(privacy_app, ["check-policy", str(policy_path)])
    assert r.exit_code == 0
    assert "tier core_sensitive" in r.output and "monetary_12m" in r.output


def test_scan_strict(tmp_path, policy_path):
    data = tmp_path / "d.csv"
    _data(data)
    r = runner.invoke(privacy_app, ["scan", str(data)])
    assert r.exit_code == 0 and "PII-DETECTED" in r.output
    r = runner.invoke(privacy_app, ["scan", str(data), "--strict"])
    assert r.exit_code == 1
    r = runner.invoke(
        privacy_app, ["scan", str(data), "--policy", str(policy_path), "--strict", "--json"]
    )
    assert r.exit_code == 0, r.output  # every identity column is core_sensitive in the policy
    r = runner.invoke(privacy_app, ["scan", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "file does not exist (rule: data path)" in r.stderr
