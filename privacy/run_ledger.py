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

Records hold identifiers, hashes and epsilon figures only: never keys, raw values or config
values (the config is represented by its hash). Appends take an ``fcntl`` lock, refuse to extend
a ledger that fails verification, write one line with ``O_APPEND`` + ``fsync`` and then replace
the head atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import PrivacyError
from .keys import Keyring
from confide.core.files import atomic_write_text

__all__ = [
    "ENV_RUN_LEDGER_KEY_FILE",
    "GENESIS",
    "RunLedger",
    "RunLedgerError",
    "VerifyResult",
    "append_run",
    "canonical_json",
    "file_sha256",
    "load_ledger_key",
    "run_epsilon_from_snapshots",
]

ENV_RUN_LEDGER_KEY_FILE = "CONFIDE_RUN_LEDGER_KEY_FILE"
GENESIS = "0" * 64
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:+-]{1,200}$")
_OUTCOMES = ("completed", "stopped")
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
) -> tuple[str, bytes] | None:
    """(key id, HMAC key) from ``path`` or ``$CONFIDE_RUN_LEDGER_KEY_FILE``; None if neither.

    The file is a Confide key file (validated, owner-only); the HMAC key is its active key's
    HKDF subkey bound to the run ledger, so the same file can never yield a pseudonym key.
    """
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(ENV_RUN_LEDGER_KEY_FILE)
    if not chosen:
        return None
    keyring = Keyring.from_file(chosen)
    return keyring.active, keyring.subkey("pseudonym", "confide-run-ledger", "record-mac")


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reading

    def _lines(self) -> list[bytes]:
        if not self.path.exists():
            return []
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise RunLedgerError(
                f"{self.path}: cannot read the run ledger ({exc.strerror}) (rule: run ledger chain)"
            ) from None
        if not raw:
            return []
        lines = raw.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        else:
            lines[-1] = lines[-1] + b"\0"  # marks an unterminated last line (torn write)
        return lines

    def records(self) -> list[dict[str, Any]]:
        """Every record in file order (RunLedgerError on an unreadable line)."""
        out = []
        for i, line in enumerate(self._lines(), 1):
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise RunLedgerError(
                    f"{self.path}: record {i} is not a valid JSON line (rule: run ledger chain)"
                ) from None
            if not isinstance(rec, dict):
                raise RunLedgerError(
                    f"{self.path}: record {i} is not a JSON object (rule: run ledger chain)"
                )
            out.append(rec)
        return out

    def _head(self) -> dict[str, Any] | None:
        if not self.head_path.exists():
            return None
        try:
            head = json.loads(self.head_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {"invalid": True}
        return head if isinstance(head, dict) else {"invalid": True}

    def _head_payload(self, count: int, head: str) -> bytes:
        return canonical_json({"count": count, "head": head, "ledger": "confide-run-ledger/v1"})

    # ------------------------------------------------------------------ verification

    def verify(self) -> VerifyResult:
        """Check the chain, every hash (and MAC with a key) and the head; name the first bad
        record."""

        def bad(index: int | None, count: int, head: str, message: str) -> VerifyResult:
            return VerifyResult(False, count, head, index, message, self._key is not None)

        try:
            records = self.records()
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
            if rec["seq"] != i:
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: carries sequence number {rec['seq']}, expected {i}: "
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
            if _hash(rec) != rec["hash"]:
                return bad(
                    i,
                    len(records),
                    prev,
                    f"record {i}{run}: content does not match its hash: edited",
                )
            if self._key is not None:
                kid, key = self._key
                if (
                    rec.get("mac_key") != kid
                    or not isinstance(rec.get("mac"), str)
                    or not hmac.compare_digest(rec["mac"], _mac(key, canonical_json(_body(rec))))
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
        head = self._head()
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
            or not isinstance(head.get("head"), str)
        ):
            return bad(None, count, prev, f"head file {self.head_path.name} is malformed")
        if self._key is not None:
            kid, key = self._key
            expected = _mac(key, self._head_payload(head["count"], head["head"]))
            if (
                head.get("mac_key") != kid
                or not isinstance(head.get("mac"), str)
                or not hmac.compare_digest(head["mac"], expected)
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
            return bad(
                head["count"] + 1,
                count,
                prev,
                f"record {head['count'] + 1} (run {extra.get('run_id')}): not covered by "
                f"the head (which ends at record {head['count']}): forged, or an append "
                "was interrupted",
            )
        if head["head"] != prev:
            return bad(
                count,
                count,
                prev,
                f"record {count}: its hash differs from the head's: edited or replaced",
            )
        return VerifyResult(True, count, prev, None, "ok", self._key is not None)

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
    ) -> dict[str, Any]:
        """Append one run's record (after verifying the ledger); returns the record."""
        _check_fields(run_id, config_sha256, policy_sha256, epsilon, model_sha256, outcome)
        with self._locked():
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
            record["hash"] = _hash(record)
            head: dict[str, Any] = {"count": record["seq"], "head": record["hash"]}
            if self._key is not None:
                kid, key = self._key
                record["mac"] = _mac(key, canonical_json(_body(record)))
                record["mac_key"] = kid
                head["mac"] = _mac(key, self._head_payload(head["count"], head["head"]))
                head["mac_key"] = kid
            line = canonical_json(record) + b"\n"
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            atomic_write_text(self.head_path, json.dumps(head, sort_keys=True) + "\n")
        return record


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
) -> dict[str, Any]:
    """Append one run to the ledger at ``path``: the config enters only as the SHA-256 of its
    canonical JSON, the model as the SHA-256 of its file (None when there is none)."""
    return RunLedger(path, key).append(
        run_id=run_id,
        config_sha256=hashlib.sha256(canonical_json(config)).hexdigest(),
        policy_sha256=policy_sha256,
        epsilon=epsilon,
        model_sha256=file_sha256(model_path) if model_path is not None else None,
        outcome=outcome,
    )
