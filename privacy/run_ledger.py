"""The run ledger: an append-only, hash-chained JSON-lines log of every run.

Each line is one record::

    {"seq": 3, "prev": "<hash of record 2>", "run_id": ..., "time": "<UTC ISO 8601>",
     "config_sha256": ..., "policy_sha256": {node: ...}, "nodes": [...],
     "epsilon": {node: spent}, "model_sha256": ... | null, "outcome": "completed" | "stopped",
     "hash": "<SHA-256 of the canonical JSON of every other field>",
     "mac": "<HMAC-SHA256 of the same bytes>", "mac_key": "<key id>"}   # mac only with a key

Canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
in UTF-8. Record 1 links to 64 zeros. A small sidecar ``<ledger>.head`` holds the record count
and the last record's hash, so deleting records at the end (truncation) or appending a record
behind the ledger's back is detected too; print the head (``confide ledger show``) and keep it
elsewhere (a ticket, a mail) to anchor it. Without a key, anyone who can rewrite both files can
rewrite history consistently; with a key (``CONFIDE_RUN_LEDGER_KEY_FILE``, a Confide key file
from ``confide keys new``), every record and the head carry an HMAC that cannot be forged
without it.

The HMAC key is the key file's HKDF key for the run ledger's own purpose (``Keyring.internal_key``),
which no policy can derive. Ledgers whose MACs used the earlier pseudonym-derived key verify under
that legacy key until they are migrated, exactly once: ``confide ledger migrate-key`` or the next
append re-MACs every record and marks the head (``mac_scheme``, ``migrated``); from then on only the
new key verifies.

A record may carry ``budget``: per node, an anchor of its budget ledger (which ledger, by the
SHA-256 of its resolved path; its lifetime spend; its number of runs; the SHA-256 of its runs), so
a budget ledger that was deleted or rewound after a run is detected
(:func:`check_budget_continuity`).

An append killed after its line but before the head update, or in the middle of its line, leaves
a torn last line: verification names it, and :meth:`RunLedger.repair` (``confide ledger repair``)
removes only that, after a backup of the removed bytes and a line in ``<ledger>.repairs``.

Records hold identifiers, hashes and epsilon figures only: never keys, raw values or config
values (the config is represented by its hash). Appends take an ``fcntl`` lock, refuse to extend
a ledger that fails verification, write one line with ``O_APPEND`` + ``fsync`` and then replace
the head atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confide.core.errors import ConfideError
from confide.core.files import (
    atomic_write_bytes,
    atomic_write_text,
    file_lock,
    read_regular_file,
)

from .budget_ledger import BudgetLedger, LedgerError, budget_anchor
from .errors import PrivacyError
from .keys import Keyring

__all__ = [
    "ENV_RUN_LEDGER_KEY_FILE",
    "GENESIS",
    "MAC_SCHEME",
    "LedgerKey",
    "RunLedger",
    "RunLedgerError",
    "VerifyResult",
    "append_run",
    "budget_anchors",
    "canonical_json",
    "check_budget_continuity",
    "check_node_budgets",
    "file_sha256",
    "load_ledger_key",
    "run_epsilon_from_snapshots",
]

ENV_RUN_LEDGER_KEY_FILE = "CONFIDE_RUN_LEDGER_KEY_FILE"
GENESIS = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,200}$")
_OUTCOMES = ("completed", "stopped")
# A record's optional ``kind``: absent means a training run (every record before analyses).
_KINDS = ("training", "analysis")
MAC_SCHEME = "confide-run-ledger-mac/v2"
_MAC_LABEL = "run-ledger-mac"
_LEGACY_SUBKEY = ("pseudonym", "confide-run-ledger", "record-mac")  # before MAC_SCHEME
_REPAIR = "(rule: run ledger repair)"
_FIELDS = (
    "seq",
    "prev",
    "run_id",
    "time",
    "config_sha256",
    "policy_sha256",
    "nodes",
    "epsilon",
    "model_sha256",
    "outcome",
    "hash",
)


class RunLedgerError(PrivacyError):
    """The run ledger cannot be read, verified or appended to."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`RunLedger.verify`: ``ok``, the first bad record and why."""

    ok: bool
    count: int
    head: str
    first_bad: int | None = None
    message: str = "ok"
    macs_checked: bool = False
    legacy_mac: bool = False


class LedgerKey(tuple):
    """``(key id, HMAC key)`` of the run ledger, plus the legacy pseudonym-derived key that
    verifies a not yet migrated ledger exactly once (during its migration)."""

    legacy: bytes | None

    def __new__(cls, key_id: str, key: bytes, legacy: bytes | None = None) -> LedgerKey:
        obj = super().__new__(cls, (key_id, key))
        obj.legacy = legacy
        return obj

    def __repr__(self) -> str:
        return f"LedgerKey(key_id={self[0]!r})"

    __str__ = __repr__


def canonical_json(obj: Any) -> bytes:
    """Canonical UTF-8 JSON: sorted keys, no whitespace, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    digest = hashlib.sha256()
    with p.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_ledger_key(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> LedgerKey | None:
    """(key id, HMAC key) from ``path`` or ``$CONFIDE_RUN_LEDGER_KEY_FILE``; None if neither.

    The file is a Confide key file (validated, owner-only); the HMAC key is its active key's
    HKDF key for the run ledger's own purpose, which no policy (no pseudonym, SIV or GCM subkey
    of any dataset and column) can derive. The legacy key rides along for a one-time migration.
    """
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(ENV_RUN_LEDGER_KEY_FILE)
    if not chosen:
        return None
    keyring = Keyring.from_file(chosen)
    return LedgerKey(
        keyring.active, keyring.internal_key(_MAC_LABEL), keyring.subkey(*_LEGACY_SUBKEY)
    )


def run_epsilon_from_snapshots(snapshots: Mapping[str, Any], run_id: str) -> dict[str, float]:
    """Epsilon charged to ``run_id`` in each node's budget ledger snapshot (0 if absent)."""
    out = {}
    for node, snap in snapshots.items():
        runs = [r for r in (snap or {}).get("runs", []) if r.get("run_id") == run_id]
        out[str(node)] = float(sum(float(r.get("spent_epsilon", 0.0)) for r in runs))
    return out


def _body(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("hash", "mac", "mac_key")}


def _hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(_body(record))).hexdigest()


def _mac(key: bytes, payload: bytes) -> str:
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def _check_fields(
    run_id: str,
    config_sha256: str,
    policy_sha256: Mapping[str, str],
    epsilon: Mapping[str, float],
    model_sha256: str | None,
    outcome: str,
) -> None:
    if not _NAME.match(run_id):
        raise RunLedgerError(
            "run ledger: run id must be 1-200 characters of [A-Za-z0-9_.:+-] "
            "(rule: run ledger record)"
        )
    hashes = [config_sha256, *policy_sha256.values()] + ([model_sha256] if model_sha256 else [])
    if not all(isinstance(h, str) and _HEX64.match(h) for h in hashes):
        raise RunLedgerError(
            "run ledger: hashes must be 64 lowercase hex digits (rule: run ledger record)"
        )
    names = [*policy_sha256, *epsilon]
    if not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise RunLedgerError(
            "run ledger: node names must be 1-200 characters of "
            "[A-Za-z0-9_.:+-] (rule: run ledger record)"
        )
    if not all(
        isinstance(e, int | float) and not isinstance(e, bool) and math.isfinite(e) and e >= 0
        for e in epsilon.values()
    ):
        raise RunLedgerError(
            "run ledger: epsilon must be finite and non-negative (rule: run ledger record)"
        )
    if outcome not in _OUTCOMES:
        raise RunLedgerError(
            "run ledger: outcome must be completed or stopped (rule: run ledger record)"
        )


class RunLedger:
    """The run ledger at ``path`` (JSON lines) with its head sidecar ``<path>.head``."""

    def __init__(self, path: str | Path, key: tuple[str, bytes] | None = None) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._key = key

    def __repr__(self) -> str:
        return f"RunLedger({str(self.path)!r}, hmac={'on' if self._key else 'off'})"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.path):
            yield

    # ------------------------------------------------------------------ reading

    def _raw(self) -> bytes:
        if not self.path.exists():
            return b""
        try:
            return read_regular_file(self.path, "run ledger")
        except ConfideError as exc:
            raise RunLedgerError(f"{exc} (rule: run ledger chain)") from None

    @staticmethod
    def _split(raw: bytes) -> list[bytes]:
        if not raw:
            return []
        lines = raw.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        else:
            lines[-1] = lines[-1] + b"\0"  # marks an unterminated last line (torn write)
        return lines

    def _parse(self, raw: bytes) -> list[dict[str, Any]]:
        out = []
        lines = self._split(raw)
        for i, line in enumerate(lines, 1):
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                if i == len(lines) and line.endswith(b"\0"):
                    raise RunLedgerError(
                        f"{self.path}: record {i} is a torn last line (an append was "
                        "interrupted mid-write); `confide ledger repair` removes it "
                        "(rule: run ledger chain)"
                    ) from None
                raise RunLedgerError(
                    f"{self.path}: record {i} is not a valid JSON line (rule: run ledger chain)"
                ) from None
            if not isinstance(rec, dict):
                raise RunLedgerError(
                    f"{self.path}: record {i} is not a JSON object (rule: run ledger chain)"
                )
            out.append(rec)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every record in file order (RunLedgerError on an unreadable line)."""
        return self._parse(self._raw())

    def _head(self) -> dict[str, Any] | None:
        if not self.head_path.exists():
            return None
        try:
            head = json.loads(read_regular_file(self.head_path, "run ledger head").decode("utf-8"))
        except (ConfideError, UnicodeDecodeError, ValueError):
            return {"invalid": True}
        return head if isinstance(head, dict) else {"invalid": True}

    def _head_payload(
        self, count: int, head: str, scheme: str | None = None, migrated: Any = None
    ) -> bytes:
        if scheme != MAC_SCHEME:  # the legacy head MAC
            return canonical_json({"count": count, "head": head, "ledger": "confide-run-ledger/v1"})
        return canonical_json(
            {"count": count, "head": head, "ledger": "confide-run-ledger/v2", "migrated": migrated}
        )

    def _mac_keys(self, head: dict[str, Any] | None) -> tuple[list[bytes], bool]:
        """The keys a record MAC may verify under, and whether the ledger is still legacy."""
        if self._key is None:
            return [], False
        legacy = (
            head is not None
            and not head.get("invalid")
            and "mac" in head
            and head.get("mac_scheme") != MAC_SCHEME
        )
        if not legacy:
            return [self._key[1]], False
        old = getattr(self._key, "legacy", None)
        # a migration interrupted after re-MACing the records leaves new MACs: also valid
        return ([old] if old is not None else []) + [self._key[1]], True

    # ------------------------------------------------------------------ verification

    def verify(self) -> VerifyResult:
        """Check the chain, every hash (and MAC with a key) and the head; name the first bad
        record."""
        return self._verify(self._raw(), self._head())

    def _verify(self, raw: bytes, head: dict[str, Any] | None) -> VerifyResult:
        keys, legacy = self._mac_keys(head)

        def bad(index: int | None, count: int, top: str, message: str) -> VerifyResult:
            return VerifyResult(False, count, top, index, message, self._key is not None, legacy)

        try:
            records = self._parse(raw)
        except RunLedgerError as exc:
            found = re.search(r"record (\d+)", str(exc))
            return bad(int(found.group(1)) if found else None, 0, GENESIS, str(exc))
        prev = GENESIS
        for i, rec in enumerate(records, 1):
            run = f" (run {rec.get('run_id')})" if isinstance(rec.get("run_id"), str) else ""
            missing = [f for f in _FIELDS if f not in rec]
            if missing:
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: fields missing ({', '.join(missing)}): edited",
                )
            if rec["seq"] != i or isinstance(rec["seq"], bool):
                seq = rec["seq"] if isinstance(rec["seq"], int) else "of the wrong type"
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: carries sequence number {seq}, expected {i}: "
                    "a record was deleted, inserted or moved here",
                )
            if rec["prev"] != prev:
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: does not link to record {i - 1}'s hash: record "
                    f"{i - 1} was edited, or a record was deleted, inserted or moved here",
                )
            try:
                digest = _hash(rec)
            except (TypeError, ValueError):
                digest = None
            if digest != rec["hash"]:
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: content does not match its hash: edited",
                )
            wrong = _record_type_error(rec)
            if wrong is not None:
                return bad(i, len(records), prev, f"record {i}{run}: {wrong}: edited")
            if self._key is not None:
                kid = self._key[0]
                body = canonical_json(_body(rec))
                if (
                    rec.get("mac_key") != kid
                    or not isinstance(rec.get("mac"), str)
                    or not any(hmac.compare_digest(rec["mac"], _mac(k, body)) for k in keys)
                ):
                    return bad(
                        i,
                        len(records),
                        prev,
                        f"record {i}{run}: HMAC does not verify under key '{kid}': forged "
                        "or edited",
                    )
            prev = rec["hash"]
        count = len(records)
        if head is None:
            if count:
                return bad(
                    count,
                    count,
                    prev,
                    f"head file {self.head_path.name} is missing: truncation or "
                    f"appended records cannot be ruled out after record {count}",
                )
            return VerifyResult(True, 0, GENESIS, None, "ok (empty ledger)", self._key is not None)
        if (
            head.get("invalid")
            or not isinstance(head.get("count"), int)
            or isinstance(head.get("count"), bool)
            or not isinstance(head.get("head"), str)
        ):
            return bad(None, count, prev, f"head file {self.head_path.name} is malformed")
        if self._key is not None:
            kid = self._key[0]
            scheme = head.get("mac_scheme")
            head_key = keys[0] if legacy and keys else self._key[1]
            payload = self._head_payload(head["count"], head["head"], scheme, head.get("migrated"))
            if (
                head.get("mac_key") != kid
                or not isinstance(head.get("mac"), str)
                or not ((legacy and getattr(self._key, "legacy", None) is not None) or not legacy)
                or not hmac.compare_digest(head["mac"], _mac(head_key, payload))
            ):
                return bad(
                    None,
                    count,
                    prev,
                    f"head file {self.head_path.name}: HMAC does not verify: forged",
                )
        if head["count"] > count:
            return bad(
                count + 1,
                count,
                prev,
                f"record {count + 1}: missing; the head names {head['count']} records but "
                f"the ledger ends after record {count}: truncated",
            )
        if head["count"] < count:
            extra = records[head["count"]]
            torn = head["count"] == count - 1 and head["head"] == extra.get("prev")
            hint = "; if an append was torn, `confide ledger repair` removes it" if torn else ""
            return bad(
                head["count"] + 1,
                count,
                prev,
                f"record {head['count'] + 1} (run {extra.get('run_id')}): not covered by "
                f"the head (which ends at record {head['count']}): forged, or an append "
                f"was interrupted{hint}",
            )
        if head["head"] != prev:
            return bad(
                count,
                count,
                prev,
                f"record {count}: its hash differs from the head's: edited or replaced",
            )
        if legacy:
            return VerifyResult(
                True,
                count,
                prev,
                None,
                "ok (MACs under the legacy pseudonym-derived key: migrated by "
                "`confide ledger migrate-key` or the next append)",
                True,
                True,
            )
        return VerifyResult(True, count, prev, None, "ok", self._key is not None)

    # ------------------------------------------------------------------ writing

    def _write_head(self, count: int, head: str, migrated: Mapping[str, Any] | None = None) -> None:
        out: dict[str, Any] = {"count": count, "head": head}
        if self._key is not None:
            kid, key = self._key[0], self._key[1]
            out["mac_scheme"] = MAC_SCHEME
            if migrated is not None:
                out["migrated"] = dict(migrated)
            out["mac"] = _mac(key, self._head_payload(count, head, MAC_SCHEME, out.get("migrated")))
            out["mac_key"] = kid
        atomic_write_text(self.head_path, json.dumps(out, sort_keys=True) + "\n")

    def _migrate_locked(self) -> dict[str, Any] | None:
        head = self._head()
        state = self._verify(self._raw(), head)
        if not state.legacy_mac:
            return None
        if not state.ok:
            raise RunLedgerError(
                f"{self.path}: the run ledger fails verification under the legacy key "
                f"({state.message}); refusing to migrate its MACs (rule: run ledger chain)"
            )
        kid, key = self._key[0], self._key[1]  # type: ignore[index]
        records = self._parse(self._raw())
        lines = []
        for rec in records:
            rec["mac"] = _mac(key, canonical_json(_body(rec)))
            rec["mac_key"] = kid
            lines.append(canonical_json(rec) + b"\n")
        atomic_write_bytes(self.path, b"".join(lines), file_mode=0o640)
        migrated = {
            "from": "pseudonym-subkey",
            "records": len(records),
            "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self._write_head(state.count, state.head, migrated)
        return migrated

    def migrate_key(self) -> dict[str, Any] | None:
        """Re-MAC a ledger made under the legacy pseudonym-derived key with the run ledger's own
        key, after verifying it under the legacy key; record the migration in the head. Returns
        the migration record, or None when there was nothing to migrate."""
        if self._key is None:
            raise RunLedgerError(
                f"{self.path}: migrating the MAC key needs the ledger's key file "
                "(rule: run ledger key)"
            )
        with self._locked():
            return self._migrate_locked()

    def repair(self) -> dict[str, Any]:
        """Remove a torn last line (a partial line, or a last record the head does not cover)
        and nothing else: back up the removed bytes, log the repair in ``<ledger>.repairs`` and
        return that log entry. Anything else is refused."""
        with self._locked():
            raw = self._raw()
            head = self._head()
            state = self._verify(raw, head)
            if state.ok:
                raise RunLedgerError(
                    f"{self.path}: the run ledger verifies; nothing to repair {_REPAIR}"
                )
            if raw and not raw.endswith(b"\n"):
                cut, kind = raw.rfind(b"\n") + 1, "partial last line"
            elif (
                raw
                and "not covered by the head" in state.message
                and state.first_bad == state.count
            ):
                cut, kind = raw.rfind(b"\n", 0, len(raw) - 1) + 1, "last record not in the head"
            else:
                raise RunLedgerError(
                    f"{self.path}: {state.message}; this is not a torn last line, refusing to "
                    f"repair {_REPAIR}"
                )
            kept = self._verify(raw[:cut], head)
            if not kept.ok:
                raise RunLedgerError(
                    f"{self.path}: without its last line the ledger still fails ({kept.message}); "
                    f"refusing to repair {_REPAIR}"
                )
            removed = raw[cut:]
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            backup = self.path.with_name(f"{self.path.name}.torn-{stamp}.bak")
            atomic_write_bytes(backup, removed, file_mode=0o600)
            entry = {
                "time": stamp,
                "kind": kind,
                "removed_bytes": len(removed),
                "removed_sha256": hashlib.sha256(removed).hexdigest(),
                "backup": backup.name,
                "kept_records": kept.count,
                "head": kept.head,
            }
            atomic_write_bytes(self.path, raw[:cut], file_mode=0o640)
            log = self.path.with_name(self.path.name + ".repairs")
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, canonical_json(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            return entry

    # ------------------------------------------------------------------ appending

    def append(
        self,
        *,
        run_id: str,
        config_sha256: str,
        policy_sha256: Mapping[str, str],
        epsilon: Mapping[str, float],
        model_sha256: str | None,
        outcome: str,
        time: datetime | None = None,
        budget: Mapping[str, Mapping[str, Any]] | None = None,
        kind: str = "training",
    ) -> dict[str, Any]:
        """Append one run's record (after verifying the ledger); returns the record.

        ``budget``: per node, the anchor of its budget ledger (:func:`budget_anchors`);
        ``kind``: ``training`` (not stored: records keep their earlier shape) or ``analysis``.
        A ledger still MAC'd under the legacy key is migrated first (once)."""
        _check_fields(run_id, config_sha256, policy_sha256, epsilon, model_sha256, outcome)
        _check_kind(kind)
        if budget is not None:
            _check_budget(budget)
        with self._locked():
            if self._key is not None:
                self._migrate_locked()
            state = self.verify()
            if not state.ok:
                raise RunLedgerError(
                    f"{self.path}: the run ledger fails verification ({state.message}); "
                    "refusing to append (rule: run ledger chain)"
                )
            when = (time or datetime.now(UTC)).astimezone(UTC)
            record: dict[str, Any] = {
                "seq": state.count + 1,
                "prev": state.head,
                "run_id": run_id,
                "time": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "config_sha256": config_sha256,
                "policy_sha256": dict(sorted(policy_sha256.items())),
                "nodes": sorted({*policy_sha256, *epsilon}),
                "epsilon": {k: float(v) for k, v in sorted(epsilon.items())},
                "model_sha256": model_sha256,
                "outcome": outcome,
            }
            if budget is not None:
                record["budget"] = {k: dict(v) for k, v in sorted(budget.items())}
            if kind != "training":
                record["kind"] = kind
            record["hash"] = _hash(record)
            if self._key is not None:
                kid, key = self._key[0], self._key[1]
                record["mac"] = _mac(key, canonical_json(_body(record)))
                record["mac_key"] = kid
            line = canonical_json(record) + b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            head = self._head() or {}
            self._write_head(record["seq"], record["hash"], head.get("migrated"))
        return record

    def budget_anchor(self, node: str, ledger_path: str | Path) -> tuple[int, dict] | None:
        """The last (record number, anchor) the run ledger holds for ``node``'s budget ledger
        at ``ledger_path``, or None."""
        ledger_id = _ledger_id(ledger_path)
        found = None
        for rec in self.records():
            anchor = (rec.get("budget") or {}).get(node)
            if isinstance(anchor, dict) and anchor.get("ledger_id") == ledger_id:
                found = (int(rec["seq"]), anchor)
        return found


def _ledger_id(path: str | Path) -> str:
    """Which budget ledger an anchor is about: the SHA-256 of its resolved path."""
    return hashlib.sha256(str(Path(path).expanduser().resolve()).encode("utf-8")).hexdigest()


def budget_anchors(ledgers: Mapping[str, tuple[str | Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """Anchors for a record's ``budget`` field from ``{node: (ledger path, snapshot)}``."""
    return {
        node: {"ledger_id": _ledger_id(path), **budget_anchor(snapshot)}
        for node, (path, snapshot) in ledgers.items()
    }


def _record_type_error(rec: Mapping[str, Any]) -> str | None:
    """Why a chained record's fields have the wrong types or ranges (None when they are fine);
    never quotes a value."""
    policy, epsilon, nodes = rec.get("policy_sha256"), rec.get("epsilon"), rec.get("nodes")
    if not isinstance(policy, dict) or not isinstance(epsilon, dict):
        return "field 'policy_sha256' or 'epsilon' is not an object"
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        return "field 'nodes' is not a list of node names"
    if not isinstance(rec.get("time"), str):
        return "field 'time' is not a timestamp string"
    if not isinstance(rec.get("run_id"), str) or not isinstance(rec.get("outcome"), str):
        return "field 'run_id' or 'outcome' is not a string"
    model = rec.get("model_sha256")
    if not isinstance(rec.get("config_sha256"), str) or not (
        model is None or isinstance(model, str)
    ):
        return "field 'config_sha256' or 'model_sha256' is not a hash"
    try:
        _check_fields(rec["run_id"], rec["config_sha256"], policy, epsilon, model, rec["outcome"])
        if "budget" in rec:
            if not isinstance(rec["budget"], dict):
                return "field 'budget' is not an object"
            _check_budget(rec["budget"])
        if "kind" in rec:
            _check_kind(rec["kind"])
    except RunLedgerError as exc:
        return "field values break the record rules (" + str(exc).split(": ", 1)[-1] + ")"
    return None


def _check_kind(kind: Any) -> None:
    if kind not in _KINDS:
        raise RunLedgerError(
            "run ledger: kind must be training or analysis (rule: run ledger record)"
        )


def _check_budget(budget: Mapping[str, Mapping[str, Any]]) -> None:
    for node, anchor in budget.items():
        ok = (
            isinstance(node, str)
            and _NAME.match(node)
            and isinstance(anchor, Mapping)
            and all(
                isinstance(anchor.get(k), str) and _HEX64.match(anchor[k])
                for k in ("ledger_id", "runs_sha256")
            )
            and isinstance(anchor.get("runs"), int)
            and not isinstance(anchor.get("runs"), bool)
            and anchor["runs"] >= 0
            and isinstance(anchor.get("lifetime_spent"), int | float)
            and not isinstance(anchor.get("lifetime_spent"), bool)
            and math.isfinite(anchor["lifetime_spent"])
            and anchor["lifetime_spent"] >= 0
        )
        if not ok:
            raise RunLedgerError(
                "run ledger: budget anchors need a node name, ledger_id, runs_sha256, a "
                "non-negative runs count and a finite non-negative lifetime_spent "
                "(rule: run ledger record)"
            )


def check_budget_continuity(book: RunLedger, ledger: BudgetLedger) -> None:
    """Refuse (LedgerError, one line) when ``ledger`` was deleted or rewound since the run
    ledger last recorded it: less lifetime spend or fewer runs than anchored there."""
    found = book.budget_anchor(ledger.node, ledger.path)
    if found is None:
        return
    seq, anchor = found
    where = f"{ledger.path}: node '{ledger.node}'"
    if not ledger.exists():
        raise LedgerError(
            f"{where}: the budget ledger is missing, but run-ledger record {seq} anchored "
            "spend for it: deleted (rule: ledger continuity)"
        )
    now = budget_anchor(ledger.snapshot())
    if (
        now["lifetime_spent"] < float(anchor["lifetime_spent"]) - 1e-9
        or now["runs"] < int(anchor["runs"])
        or (
            now["runs"] == int(anchor["runs"])
            and now["runs_sha256"] != anchor["runs_sha256"]
            and now["lifetime_spent"] <= float(anchor["lifetime_spent"]) + 1e-9
        )
    ):
        raise LedgerError(
            f"{where}: the budget ledger holds less spend or fewer runs than run-ledger record "
            f"{seq} anchored: rewound or edited (rule: ledger continuity)"
        )


def append_run(
    path: str | Path,
    *,
    run_id: str,
    config: Mapping[str, Any],
    policy_sha256: Mapping[str, str],
    epsilon: Mapping[str, float],
    model_path: str | Path | None,
    outcome: str,
    key: tuple[str, bytes] | None = None,
    budget_ledgers: Mapping[str, tuple[str | Path, Mapping[str, Any]]] | None = None,
    kind: str = "training",
) -> dict[str, Any]:
    """Append one run to the ledger at ``path``: the config enters only as the SHA-256 of its
    canonical JSON, the model as the SHA-256 of its file (None when there is none).
    ``budget_ledgers`` (``{node: (ledger path, snapshot)}``) anchors each node's budget ledger
    in the record, so a later deletion or rewind is detected; ``kind``: training or analysis."""
    return RunLedger(path, key).append(
        kind=kind,
        budget=budget_anchors(budget_ledgers) if budget_ledgers else None,
        run_id=run_id,
        config_sha256=hashlib.sha256(canonical_json(config)).hexdigest(),
        policy_sha256=policy_sha256,
        epsilon=epsilon,
        model_sha256=file_sha256(model_path) if model_path is not None else None,
        outcome=outcome,
    )


def check_node_budgets(
    run_ledger: str | Path,
    nodes: Iterable[tuple[str, str | Path]],
    key: tuple[str, bytes] | None = None,
) -> None:
    """Preflight: every ``(node, budget ledger path)`` against the run ledger's last anchor of
    that ledger (:func:`check_budget_continuity`); nothing to check without a run ledger."""
    path = Path(run_ledger)
    if not path.exists():
        return
    book = RunLedger(path, key)
    for node, ledger_path in nodes:
        check_budget_continuity(book, BudgetLedger(ledger_path, node, 0.0))
