import base64
import json
import os
import stat

import pytest

from confide.privacy import KeyMaterialError, Keyring, add_key, new_keyring_file
from confide.privacy.keys import ENV_KEYRING, ENV_KEYRING_FILE


def _json(keys, active="k1"):
    return json.dumps(
        {
            "version": 1,
            "active": active,
            "keys": {k: base64.urlsafe_b64encode(v).decode() for k, v in keys.items()},
        }
    )


def test_new_keyring_file_is_private_and_refuses_overwrite(tmp_path):
    p = tmp_path / "keys.json"
    ring = new_keyring_file(p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert ring.active == "k1"
    loaded = Keyring.load(p)
    assert loaded.subkey("gcm", "d", "c") == ring.subkey("gcm", "d", "c")
    before = p.read_bytes()
    with pytest.raises(KeyMaterialError, match="already exists"):
        new_keyring_file(p)
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["keys.json"]


def test_repr_and_errors_never_show_key_bytes(tmp_path):
    key = os.urandom(32)
    ring = Keyring({"k1": key}, "k1")
    b64 = base64.urlsafe_b64encode(key).decode()
    for text in (repr(ring), str(ring)):
        assert b64 not in text and key.hex() not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(ring)
    bad = tmp_path / "bad.json"
    bad.write_text(_json({"k1": key[:31]}))
    bad.chmod(0o600)
    with pytest.raises(KeyMaterialError) as err:
        Keyring.load(bad)
    assert base64.urlsafe_b64encode(key[:31]).decode() not in str(err.value)


def test_absent_key_everywhere(tmp_path):
    with pytest.raises(KeyMaterialError, match=r"no keyring found .*CONFIDE_KEYRING_FILE"):
        Keyring.load(None, env={})
    with pytest.raises(KeyMaterialError, match="key file not found"):
        Keyring.load(tmp_path / "absent.json")
    with pytest.raises(KeyMaterialError, match="key file not found"):
        Keyring.load(None, env={ENV_KEYRING_FILE: str(tmp_path / "absent.json")})


def test_load_from_env_json_and_env_file(tmp_path):
    key = os.urandom(32)
    ring = Keyring.load(None, env={ENV_KEYRING: _json({"k1": key})})
    assert ring.key_ids == ["k1"]
    p = tmp_path / "k.json"
    p.write_text(_json({"k1": key}))
    p.chmod(0o600)
    ring2 = Keyring.load(None, env={ENV_KEYRING_FILE: str(p)})
    assert ring2.subkey("siv", "d", "c") == ring.subkey("siv", "d", "c")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("not json", "not valid JSON"),
        ('{"version": 1, "active": "k1"}', "exactly the fields"),
        ('{"version": 2, "active": "k1", "keys": {"k1": "AA"}}', "'version' must be 1"),
        (
            '{"version": 1, "active": "k1", "keys": {"k1": "!!!"}}',
            "is not canonical padded urlsafe base64",
        ),
        ('{"version": 1, "active": "k1", "keys": {"k1": "AAAA"}}', "exactly 32 bytes"),
        ('{"version": 1, "active": "k1", "keys": {}}', "holds no keys"),
        ('{"version": 1, "active": "k1", "keys": []}', "must be a mapping"),
    ],
)
def test_invalid_key_material(text, needle):
    with pytest.raises(KeyMaterialError, match=needle):
        Keyring.from_json(text, "$CONFIDE_KEYRING")


def test_active_must_exist_and_ids_are_safe():
    with pytest.raises(KeyMaterialError, match="field 'active' does not name a key in the keyring"):
        Keyring.from_json(_json({"k1": os.urandom(32)}, active="k9"), "src")
    with pytest.raises(KeyMaterialError, match="invalid key id"):
        Keyring({"k.1": os.urandom(32)}, "k.1")


def test_loose_permissions_refused(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(_json({"k1": os.urandom(32)}))
    p.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        Keyring.load(p)


def test_rotation_adds_active_key_and_keeps_old(tmp_path):
    p = tmp_path / "k.json"
    ring = new_keyring_file(p)
    assert add_key(p) == "k2"
    new = Keyring.load(p)
    assert new.active == "k2" and new.key_ids == ["k1", "k2"]
    assert new.subkey("gcm", "d", "c", "k1") == ring.subkey("gcm", "d", "c", "k1")
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    with pytest.raises(KeyMaterialError, match="already exists"):
        add_key(p, "k1")


def test_subkeys_bind_purpose_dataset_column_and_key(keyring):
    subs = {
        keyring.subkey(*args)
        for args in [
            ("gcm", "d", "c"),
            ("gcm", "d", "c2"),
            ("gcm", "d2", "c"),
            ("pseudonym", "d", "c"),
        ]
    }
    assert len(subs) == 4
    assert len(keyring.subkey("siv", "d", "c")) == 64
    with pytest.raises(KeyMaterialError, match="unknown key purpose"):
        keyring.subkey("aes-cbc", "d", "c")
    with pytest.raises(KeyMaterialError, match="key id 'k7'"):
        keyring.subkey("gcm", "d", "c", "k7")
    # ambiguity: ("ab", "c") vs ("a", "bc") must differ
    assert keyring.subkey("gcm", "ab", "c") != keyring.subkey("gcm", "a", "bc")
