"""Keyrings: named 32-byte keys, an active key id, HKDF subkeys per purpose/dataset/column.

Key file format (JSON, owner-only permissions)::

    {"version": 1, "active": "k1", "keys": {"k1": "<urlsafe base64 of 32 random bytes>"}}

Sources, in order: an explicit path; ``CONFIDE_KEYRING`` (the JSON itself);
``CONFIDE_KEYRING_FILE`` (a path). Key bytes never appear in reprs, logs or exceptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from confide.core.files import (
    UnsafeFileError,
    atomic_write_text,
    file_lock,
    read_regular_file,
    remove_stale_temps,
)

from .errors import KeyMaterialError
from .findings import Rule

__all__ = ["ENV_KEYRING", "ENV_KEYRING_FILE", "PURPOSES", "Keyring", "add_key", "new_keyring_file"]

ENV_KEYRING = "CONFIDE_KEYRING"
ENV_KEYRING_FILE = "CONFIDE_KEYRING_FILE"
PURPOSES = {"pseudonym": 32, "siv": 64, "gcm": 32}  # purpose -> subkey length in bytes
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HINT = f"pass --keys KEYFILE or set {ENV_KEYRING_FILE}"


_B64_PADDED = re.compile(r"[A-Za-z0-9_-]*={0,2}")
MAX_KEY_FILE_BYTES = 64 * 1024


def _b64decode(text: str) -> bytes:
    """Strict padded urlsafe base64: exact alphabet, padding only at the end, canonical bits."""
    if not _B64_PADDED.fullmatch(text) or len(text) % 4:
        raise ValueError("not canonical urlsafe base64")
    raw = base64.urlsafe_b64decode(text)
    if base64.urlsafe_b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical urlsafe base64")
    return raw


def _encode_parts(*parts: str) -> bytes:
    out = bytearray()
    for p in parts:
        b = p.encode("utf-8")
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


class Keyring:
    """Named 32-byte keys plus the id of the active key; validated at construction."""

    __slots__ = ("_active", "_keys", "_subkeys", "source")

    def __init__(self, keys: Mapping[str, bytes], active: str, source: str = "<keyring>") -> None:
        self.source = source
        if not keys:
            raise KeyMaterialError(f"{source}: keyring holds no keys (rule KEY-FORMAT)")
        for kid, key in keys.items():
            if not isinstance(kid, str) or not KEY_ID_RE.match(kid):
                raise KeyMaterialError(
                    f"{source}: invalid key id; use 1-32 of A-Z a-z 0-9 _ - (rule KEY-FORMAT)"
                )
            if not isinstance(key, bytes | bytearray) or len(key) != 32:
                raise KeyMaterialError(
                    f"{source}: key '{kid}' must be exactly 32 bytes (rule KEY-FORMAT)"
                )
        if not isinstance(active, str) or active not in keys:  # never echoed: may be a key
            raise KeyMaterialError(
                f"{source}: field 'active' does not name a key in the keyring (rule KEY-FORMAT)"
            )
        self._keys = {k: bytes(v) for k, v in keys.items()}
        self._active = active
        self._subkeys: dict[tuple, bytes] = {}

    def __repr__(self) -> str:
        return f"Keyring(source={self.source!r}, active={self._active!r}, key_ids={self.key_ids})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Keyring objects are not picklable (key material stays in memory)")

    @property
    def active(self) -> str:
        """Id of the key used for new pseudonyms and ciphertexts."""
        return self._active

    @property
    def key_ids(self) -> list[str]:
        """All key ids (old ones stay readable after rotation)."""
        return list(self._keys)

    def has(self, key_id: str) -> bool:
        """True if ``key_id`` is in the keyring."""
        return key_id in self._keys

    def subkey(self, purpose: str, dataset: str, column: str, key_id: str | None = None) -> bytes:
        """HKDF-SHA256 subkey bound to purpose, dataset, column and key id."""
        if purpose not in PURPOSES:
            raise KeyMaterialError(
                f"{self.source}: unknown key purpose (rule KEY-PURPOSE); use "
                f"one of {', '.join(PURPOSES)}"
            )
        kid = self._active if key_id is None else key_id
        if kid not in self._keys:
            raise KeyMaterialError(
                f"{self.source}: key id '{kid}' is not in the keyring (rule KEY-ID)"
            )
        cache_key = (purpose, dataset, column, kid)
        sub = self._subkeys.get(cache_key)
        if sub is None:
            info = _encode_parts("confide/v1", purpose, dataset, column, kid)
            sub = HKDF(hashes.SHA256(), PURPOSES[purpose], salt=None, info=info).derive(
                self._keys[kid]
            )
            self._subkeys[cache_key] = sub
        return sub

    def internal_key(self, label: str, key_id: str | None = None) -> bytes:
        """A 32-byte HKDF-SHA256 key for one of Confide's own uses (``label``, e.g. the run
        ledger's MACs). Its HKDF info starts with ``confide/internal/v1``, which no
        purpose/dataset/column subkey (info ``confide/v1``, ...) and so no policy can produce."""
        kid = self._active if key_id is None else key_id
        if kid not in self._keys:
            raise KeyMaterialError(
                f"{self.source}: key id '{kid}' is not in the keyring (rule KEY-ID)"
            )
        info = _encode_parts("confide/internal/v1", label, kid)
        return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(self._keys[kid])

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_json(cls, text: str | bytes, source: str) -> Keyring:
        """Parse the key-file JSON; KeyMaterialError naming ``source`` on any problem."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise KeyMaterialError(
                f"{source}: key file is not valid JSON (rule KEY-FORMAT)"
            ) from None
        if not isinstance(data, dict) or set(data) != {"version", "active", "keys"}:
            raise KeyMaterialError(
                f"{source}: key file must have exactly the fields version, "
                "active, keys (rule KEY-FORMAT)"
            )
        if data["version"] != 1 or isinstance(data["version"], bool):
            raise KeyMaterialError(f"{source}: field 'version' must be 1 (rule KEY-FORMAT)")
        if not isinstance(data["keys"], dict) or not isinstance(data["active"], str):
            raise KeyMaterialError(
                f"{source}: 'keys' must be a mapping and 'active' a key id (rule KEY-FORMAT)"
            )
        keys: dict[str, bytes] = {}
        for kid, enc in data["keys"].items():
            try:
                if not isinstance(enc, str):
                    raise ValueError("not a string")
                keys[kid] = _b64decode(enc)
            except (ValueError, binascii.Error):
                name = f"key '{kid}'" if KEY_ID_RE.match(kid) else "a key"
                raise KeyMaterialError(
                    f"{source}: {name} is not canonical padded urlsafe base64 (rule KEY-FORMAT)"
                ) from None
        return cls(keys, data["active"], source)

    @classmethod
    def from_file(cls, path: str | Path) -> Keyring:
        """Read a key file; refuses files readable or writable by group/others."""
        p = Path(path)
        try:
            st = p.stat()  # type and permissions are checked before a byte is read
        except FileNotFoundError:
            raise KeyMaterialError(
                f"{p}: key file not found (rule KEY-MISSING); "
                "create one with 'confide keys new PATH'"
            ) from None
        except OSError as exc:
            raise KeyMaterialError(
                f"{p}: cannot read key file ({exc.strerror}) (rule KEY-MISSING)"
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise KeyMaterialError(f"{p}: key file is not a regular file (rule KEY-FORMAT)")
        if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyMaterialError(
                f"{p}: key file is accessible by group or others "
                "(rule KEY-PERMISSIONS); run chmod 600 on it"
            )
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise KeyMaterialError(
                f"{p}: key file is over the {MAX_KEY_FILE_BYTES}-byte limit (rule KEY-FORMAT)"
            )
        try:
            raw = read_regular_file(p, "key file", max_bytes=MAX_KEY_FILE_BYTES)
        except UnsafeFileError as exc:
            raise KeyMaterialError(str(exc)) from None  # changed between check and read
        return cls.from_json(raw, str(p))

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Keyring:
        """Keyring from ``path``, else ``CONFIDE_KEYRING``, else ``CONFIDE_KEYRING_FILE``."""
        env = os.environ if env is None else env
        if path is not None:
            return cls.from_file(path)
        if env.get(ENV_KEYRING):
            return cls.from_json(env[ENV_KEYRING], f"${ENV_KEYRING}")
        if env.get(ENV_KEYRING_FILE):
            return cls.from_file(env[ENV_KEYRING_FILE])
        raise KeyMaterialError(f"no keyring found (rule KEY-MISSING); {_HINT}")

    def to_json(self) -> str:
        """Key-file JSON (contains key material: write only to owner-only files)."""
        enc = {k: base64.urlsafe_b64encode(v).decode("ascii") for k, v in self._keys.items()}
        return json.dumps({"version": 1, "active": self._active, "keys": enc}, indent=2) + "\n"


def _write_new_private(path: Path, text: str) -> None:
    """Create ``path`` (mode 0o600) atomically; refuses an existing path (also a symlink)."""
    remove_stale_temps(path)
    try:
        atomic_write_text(path, text, file_mode=0o600, overwrite=False)
    except FileExistsError:
        raise KeyMaterialError(
            f"{path}: key file already exists (rule KEY-OVERWRITE); "
            "use 'confide keys rotate' to add a key"
        ) from None


def new_keyring_file(path: str | Path, key_id: str = "k1") -> Keyring:
    """Create a new key file (mode 0o600) with one random key; refuses to overwrite."""
    p = Path(path)
    if not p.parent.is_dir():
        raise KeyMaterialError(f"{p}: directory does not exist (rule KEY-MISSING)")
    ring = Keyring({key_id: secrets.token_bytes(32)}, key_id, str(p))
    _write_new_private(p, ring.to_json())
    return ring


def add_key(path: str | Path, key_id: str | None = None) -> str:
    """Rotate: add a new random key to the key file and make it active; returns its id.

    A symlinked key file is written through: its final target is replaced (mode 0o600) and the
    link stays a link, so there is never a second, diverging key file.
    """
    p = Path(path)
    Keyring.from_file(p)  # type, permissions and format checked before a lock file is made
    with file_lock(p):
        remove_stale_temps(p)
        return _add_key_locked(p, key_id)


def _add_key_locked(p: Path, key_id: str | None) -> str:
    ring = Keyring.from_file(p)
    if key_id is None:
        n = len(ring.key_ids) + 1
        while ring.has(f"k{n}"):
            n += 1
        key_id = f"k{n}"
    if ring.has(key_id):
        raise KeyMaterialError(f"{p}: key id '{key_id}' already exists (rule KEY-ID)")
    keys = {k: ring._keys[k] for k in ring.key_ids}
    keys[key_id] = secrets.token_bytes(32)
    new = Keyring(keys, key_id, str(p))
    atomic_write_text(p, new.to_json(), file_mode=0o600)
    return key_id


RULE_DEFINITIONS = tuple(
    Rule(_rid, "ERROR", _title, _why, None, scope="keys")
    for _rid, _title, _why in (
        (
            "KEY-MISSING",
            "A keyring is present where a transform needs one",
            "Fail closed: pseudonymise/encrypt never fall back to keyless behaviour.",
        ),
        (
            "KEY-FORMAT",
            "Key material is well formed (base64, 32 bytes, active id present)",
            "Keys are validated at construction, before any data is touched.",
        ),
        (
            "KEY-PERMISSIONS",
            "Key files are private to their owner (mode 600)",
            "Keys must not be readable by other local users (GB/T 35273-2020 §6.3 access control).",
        ),
        (
            "KEY-OVERWRITE",
            "Key files are never overwritten",
            "Overwriting a key makes every token under it unreadable; rotate instead.",
        ),
        ("KEY-ID", "Key ids exist and are unique", "Tokens name their key id; ids must resolve."),
        (
            "KEY-PURPOSE",
            "Subkeys are derived for a known purpose",
            "HKDF info binds purpose, dataset and column so keys are never reused across uses.",
        ),
    )
)
