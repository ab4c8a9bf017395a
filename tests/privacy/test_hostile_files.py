"""Hostile file inputs to the privacy commands: outputs over inputs, YAML aliases, huge numbers,
FIFOs and devices as key or policy files, junk in base64, key files behind symlinks.

Every refusal is one line naming the file, the field and the rule, never a raw value, and leaves
every input byte-identical.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from confide.privacy import (
    DecryptionError,
    KeyMaterialError,
    Keyring,
    PolicyError,
    add_key,
    apply_file,
    decrypt_series,
    encrypt_deterministic_series,
    encrypt_randomized_series,
    load_policy,
    new_keyring_file,
)
from confide.privacy_cli import keys_app, privacy_app
from tests.privacy.customer_csv import write_customer_csv

from .conftest import POLICY_YAML

runner = CliRunner()
MARKER = "ZQXJ7731MARKER"


_data = write_customer_csv


def _one_line_refusal(result, *needles: str) -> str:
    err = result.stderr or ""
    assert result.exit_code == 2, (result.exit_code, result.output, err)
    assert "Traceback" not in result.output + err
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def files(tmp_path, policy_path):
    keys, data = tmp_path / "k.json", tmp_path / "d.csv"
    new_keyring_file(keys)
    _data(data)
    return {"keys": keys, "data": data, "policy": policy_path, "dir": tmp_path}


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


# --------------------------------------------------------------------------- outputs over inputs


def _apply_args(f, out, cmd="apply", data=None):
    return [
        cmd,
        "--policy",
        str(f["policy"]),
        "--data",
        str(data or f["data"]),
        "--out",
        str(out),
        "--keys",
        str(f["keys"]),
    ]


def test_apply_out_equal_to_key_file_is_refused_and_key_file_kept(files):
    before = _snapshot(files["keys"], files["data"], files["policy"])
    r = runner.invoke(privacy_app, _apply_args(files, files["keys"]))
    _one_line_refusal(r, str(files["keys"]), "key file", "rule: output is not an input")
    assert _snapshot(*before) == before
    assert sorted(p.name for p in files["dir"].iterdir()) == ["d.csv", "k.json", "policy.yaml"]


@pytest.mark.parametrize("role", ["policy", "data"])
def test_apply_out_equal_to_policy_or_data_is_refused(files, role):
    before = _snapshot(files["keys"], files["data"], files["policy"])
    r = runner.invoke(privacy_app, _apply_args(files, files[role]))
    _one_line_refusal(r, "rule: output is not an input")
    assert _snapshot(*before) == before


def test_out_through_symlink_or_hard_link_to_an_input_is_refused(files):
    link = files["dir"] / "link.csv"
    link.symlink_to(files["keys"])
    hard = files["dir"] / "hard.yaml"
    os.link(files["policy"], hard)
    before = _snapshot(files["keys"], files["policy"])
    r = runner.invoke(privacy_app, _apply_args(files, link))
    _one_line_refusal(r, "key file", "rule: output is not an input")
    r = runner.invoke(privacy_app, _apply_args(files, hard))
    _one_line_refusal(r, "policy", "rule: output is not an input")
    assert _snapshot(*before) == before
    assert link.is_symlink()


def test_decrypt_and_rotate_out_over_their_inputs_are_refused(files):
    applied = files["dir"] / "applied.csv"
    assert runner.invoke(privacy_app, _apply_args(files, applied)).exit_code == 0
    before = _snapshot(files["keys"], files["policy"], applied)
    for cmd in ("decrypt", "rotate"):
        for role in ("keys", "policy"):
            r = runner.invoke(privacy_app, _apply_args(files, files[role], cmd, applied))
            _one_line_refusal(r, "rule: output is not an input")
    assert _snapshot(*before) == before
    # control: a fresh output path works for both commands
    for cmd in ("decrypt", "rotate"):
        r = runner.invoke(
            privacy_app, _apply_args(files, files["dir"] / f"{cmd}.csv", cmd, applied)
        )
        assert r.exit_code == 0, r.stderr


def test_apply_file_refuses_out_over_the_keyring_file_from_env(files, monkeypatch):
    monkeypatch.setenv("CONFIDE_KEYRING_FILE", str(files["keys"]))
    before = files["keys"].read_bytes()
    r = runner.invoke(
        privacy_app,
        ["apply", "-p", str(files["policy"]), "-d", str(files["data"]), "-o", str(files["keys"])],
    )
    _one_line_refusal(r, "key file", "rule: output is not an input")
    assert files["keys"].read_bytes() == before


# --------------------------------------------------------------------------- policy YAML


def _policy_with(tmp_path, old: str, new: str, prefix: str = "") -> Path:
    text = POLICY_YAML.replace(old, new)
    assert text != POLICY_YAML
    p = tmp_path / "hostile.yaml"
    p.write_text(prefix + text, encoding="utf-8")
    return p


def test_yaml_alias_is_refused_before_values_are_interpreted(tmp_path):
    p = _policy_with(
        tmp_path,
        "age:         {tier: general_sensitive, role: feature}",
        "age:         {tier: *t, role: feature}",
        prefix="x-tier: &t general_sensitive\n",
    )
    with pytest.raises(PolicyError, match=r"line 1.*alias.*rule POLICY-SYNTAX") as err:
        load_policy(p)
    assert str(p) in str(err.value)


def test_yaml_alias_bomb_is_refused_fast_and_without_the_value(tmp_path):
    # The bomb sits inside ``tier:`` (as in the report): 9**11 references to four strings.
    levels = [f'&a0 ["{MARKER}", "{MARKER}", "{MARKER}", "{MARKER}"]']
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    bomb = f"[{', '.join(levels)}]"
    assert len(bomb.encode()) < 2048
    p = _policy_with(
        tmp_path,
        "age:         {tier: general_sensitive, role: feature}",
        f"age:         {{tier: {bomb}, role: feature}}",
    )
    code = textwrap.dedent(f"""\
        from confide.privacy import load_policy, PolicyError
        try:
            load_policy({str(p)!r})
        except PolicyError as exc:
            print("REFUSED", exc)
        """)
    t0 = time.monotonic()
    try:  # a fresh interpreter with a 2 GiB cap: the old code's repr would exhaust memory
        proc = _run_python(code, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb was expanded")
    assert time.monotonic() - t0 < 20
    assert proc.stdout.startswith("REFUSED"), proc.stdout + proc.stderr[-300:]
    assert "anchors and aliases are not allowed (rule POLICY-SYNTAX)" in proc.stdout
    assert MARKER not in proc.stdout and len(proc.stdout) < 400


def test_five_thousand_digit_integer_is_one_line(tmp_path):
    p = _policy_with(tmp_path, "max_delta: 1.0e-5", "max_delta: " + "9" * 5000)
    with pytest.raises(PolicyError, match=r"dp.max_delta.*rule POLICY-VALUE") as err:
        load_policy(p)
    assert "9999" not in str(err.value) and "\n" not in str(err.value)


def test_five_thousand_digit_integer_through_the_cli_exits_2(tmp_path):
    p = _policy_with(tmp_path, "version: 1", "version: " + "7" * 5000)
    r = runner.invoke(privacy_app, ["check-policy", str(p)])
    err = _one_line_refusal(r, str(p), "version", "rule POLICY-")
    assert "7777" not in err


def test_unknown_key_names_are_not_echoed_raw(tmp_path):
    p = _policy_with(
        tmp_path, "dataset: retailer_customers", f"dataset: retailer_customers\n{MARKER}' x: 1"
    )
    with pytest.raises(PolicyError, match="rule POLICY-UNKNOWN-KEY") as err:
        load_policy(p)
    assert MARKER not in str(err.value)
    ok = _policy_with(
        tmp_path, "dataset: retailer_customers", "dataset: retailer_customers\ntypo_key: 1"
    )
    with pytest.raises(PolicyError, match=r"unknown key\(s\) 'typo_key'"):
        load_policy(ok)  # control: a plain field name is still named


# --------------------------------------------------------------------------- FIFOs, devices, sizes


def _run_python(code: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with a 2 GiB address-space cap (no runaway memory)."""
    wrapper = "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n" + code
    return subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("what", ["keys", "policy"])
def test_fifo_and_device_refused_before_reading(tmp_path, kind, what):
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target, 0o600)
    else:
        target = Path("/dev/zero")
    call = f"Keyring.load({str(target)!r})" if what == "keys" else f"load_policy({str(target)!r})"
    code = textwrap.dedent(f"""\
        from confide.privacy import Keyring, load_policy, PrivacyError
        try:
            {call}
        except PrivacyError as exc:
            print("REFUSED", exc)
        """)
    t0 = time.monotonic()
    try:
        proc = _run_python(code, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading a {kind} as {what} hung")
    assert time.monotonic() - t0 < 15
    assert proc.stdout.startswith("REFUSED"), proc.stdout + proc.stderr[-500:]
    assert "not a regular file" in proc.stdout and str(target) in proc.stdout


def test_oversized_key_file_is_refused_by_size_not_parsed(tmp_path):
    p = tmp_path / "big.json"
    p.write_bytes(b" " * (2 << 20))
    p.chmod(0o600)
    with pytest.raises(KeyMaterialError, match=r"limit.*rule"):
        Keyring.load(p)


def test_permissions_checked_before_the_file_is_parsed(tmp_path):
    p = tmp_path / "k.json"
    p.write_text("not json at all")
    p.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="KEY-PERMISSIONS"):
        Keyring.load(p)


# --------------------------------------------------------------------------- key material


def test_key_material_pasted_into_active_is_not_echoed(tmp_path):
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"version": 1, "active": key, "keys": {"k1": key}}))
    p.chmod(0o600)
    with pytest.raises(KeyMaterialError, match=r"field 'active'.*rule KEY-FORMAT") as err:
        Keyring.load(p)
    assert key not in str(err.value) and key[:12] not in str(err.value)
    with pytest.raises(KeyMaterialError) as err:
        Keyring({"k1": os.urandom(32)}, key, "src")
    assert key not in str(err.value)


def _key_file(tmp_path, enc: str) -> Path:
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"version": 1, "active": "k1", "keys": {"k1": enc}}))
    p.chmod(0o600)
    return p


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: " " + s,  # leading whitespace
        lambda s: s[:10] + "=" + s[10:],  # padding in the middle
        lambda s: s.rstrip("="),  # padding missing
        lambda s: s[:10] + "+" + s[11:],  # standard-alphabet character
        lambda s: s[:42] + chr(ord(s[42]) + 1) + s[43:],  # non-zero trailing bits
    ],
    ids=["space", "mid-pad", "no-pad", "plus", "trailing-bits"],
)
def test_key_encodings_are_parsed_strictly(tmp_path, mangle):
    raw = bytes(range(32))
    enc = base64.urlsafe_b64encode(raw).decode()
    assert Keyring.load(_key_file(tmp_path, enc)).key_ids == ["k1"]  # control
    bad = mangle(enc)
    assert bad != enc
    with pytest.raises(KeyMaterialError, match="rule KEY-FORMAT") as err:
        Keyring.load(_key_file(tmp_path, bad))
    assert bad.strip() not in str(err.value)


@pytest.mark.parametrize("mode", ["deterministic", "randomized"])
@pytest.mark.parametrize("junk", ["*", "!", "+", " ", "="])
def test_tokens_with_junk_characters_do_not_decrypt(keyring, mode, junk):
    s = pd.Series([f"user{i}@example.com" for i in range(20)], dtype="str")
    enc = (
        encrypt_deterministic_series(s, keyring, "ds", "email")
        if mode == "deterministic"
        else encrypt_randomized_series(s, keyring, "ds", "email")
    )
    assert decrypt_series(enc, keyring, "ds", "email").tolist() == s.tolist()  # control
    token = enc.iloc[0]
    cut = len(token) - 6
    bad = enc.copy()
    bad.iloc[0] = token[:cut] + junk + token[cut:]
    with pytest.raises(DecryptionError, match="rule DECRYPT") as err:
        decrypt_series(bad, keyring, "ds", "email")
    assert token not in str(err.value)


# --------------------------------------------------------------------------- symlinked key file


def test_keys_rotate_through_a_symlink_writes_the_target(tmp_path):
    real_dir = tmp_path / "vault"
    real_dir.mkdir()
    target = real_dir / "keys.json"
    new_keyring_file(target)
    link = tmp_path / "keys.json"
    link.symlink_to(target)
    r = runner.invoke(keys_app, ["rotate", str(link)])
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert Keyring.load(target).key_ids == ["k1", "k2"]
    assert Keyring.load(link).active == "k2"
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in real_dir.iterdir() if not p.name.endswith(".lock")) == [
        "keys.json"
    ]


def test_add_key_keeps_old_keys_and_control_without_link(tmp_path):
    p = tmp_path / "k.json"
    new_keyring_file(p)
    assert add_key(p) == "k2"
    assert Keyring.load(p).key_ids == ["k1", "k2"]
    assert not p.is_symlink()


def test_apply_file_api_refuses_out_over_policy_path(files):
    before = files["policy"].read_bytes()
    with pytest.raises(Exception, match="rule: output is not an input"):
        apply_file(files["policy"], files["data"], files["policy"], Keyring.load(files["keys"]))
    assert files["policy"].read_bytes() == before


def test_oversized_policy_file_is_refused_by_size(tmp_path):
    from confide.privacy.policy import MAX_POLICY_BYTES

    p = tmp_path / "huge.yaml"
    p.write_text(POLICY_YAML + "#" * MAX_POLICY_BYTES)
    with pytest.raises(PolicyError, match=r"over the \d+-byte limit \(rule POLICY-SYNTAX\)"):
        load_policy(p)
    ok = tmp_path / "ok.yaml"
    ok.write_text(POLICY_YAML + "#" * 1000)
    assert load_policy(ok).dataset == "retailer_customers"  # control


def test_duplicate_key_with_a_raw_value_name_is_not_echoed(tmp_path):
    p = _policy_with(
        tmp_path,
        "dataset: retailer_customers",
        f"dataset: retailer_customers\n'{MARKER} x': 1\n'{MARKER} x': 2",
    )
    with pytest.raises(PolicyError, match=r"duplicate key a key that is not a plain name") as err:
        load_policy(p)
    assert MARKER not in str(err.value)


@pytest.mark.parametrize(
    "transform", ["mask:keep:" + "9" * 5000 + ":1", "generalize:numeric_bins:" + "9" * 5000]
)
def test_five_thousand_digit_number_inside_a_transform_is_one_line(tmp_path, transform):
    p = _policy_with(
        tmp_path,
        'mobile:      {tier: core_sensitive, transform: "mask:mobile"}',
        f'mobile:      {{tier: core_sensitive, transform: "{transform}"}}',
    )
    with pytest.raises(
        PolicyError, match=r"column 'mobile': field 'transform'.*rule POLICY-VALUE"
    ) as err:
        load_policy(p)
    assert "9999" not in str(err.value)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link", "group-readable"])
def test_keys_rotate_on_a_bad_key_file_writes_nothing(tmp_path, kind):
    p = tmp_path / "keys.json"
    if kind == "fifo":
        os.mkfifo(p, 0o600)
    elif kind == "dev-zero-link":
        p.symlink_to("/dev/zero")
    else:
        new_keyring_file(p)
        p.chmod(0o644)
    before = sorted(x.name for x in tmp_path.iterdir())
    r = runner.invoke(keys_app, ["rotate", str(p)])
    _one_line_refusal(r, str(p), "rule KEY-")
    assert sorted(x.name for x in tmp_path.iterdir()) == before
    assert not Path("/dev/zero.lock").exists()
