"""A node's differential-privacy budget ledger: one JSON file, validated strictly, written
atomically under a lock.

Each run a node takes part in reserves its planned epsilon *before* any training; a run whose
reservation would take the node past its lifetime epsilon is refused. The run's entry also holds
the node's own accountant state (noise multiplier, sample rate, history of steps), written after
every round, so a run continues from the node's state after a restart or when a server
interleaves run ids, and is never recalibrated from zero. The lifetime charge of a run is
max(reserved, spent): a run that stops early still counts what it reserved, so the ledger never
under-counts (basic sequential composition across runs, which is conservative).

The file is fail-closed: every number must be finite and non-negative, every field of the right
type, the stored ``lifetime_spent`` must equal the sum of the runs' charges, and a run's spent
epsilon and steps never decrease. A ledger that breaks any rule stops the node with one line that
names the file, the field and the rule. A symbolic link is written through to its target (one
ledger, never two). What a ledger cannot show by itself (it was deleted, or rewound to an older
copy) is detected against the run ledger's record of it: see :func:`budget_anchor` and
:func:`confide.privacy.run_ledger.check_budget_continuity`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confide.core.errors import ConfideError
from confide.core.files import atomic_write_json, file_lock, read_regular_file

from .errors import PrivacyError

__all__ = [
    "RUN_KINDS",
    "BudgetLedger",
    "BudgetRefused",
    "LedgerError",
    "RunCharge",
    "budget_anchor",
    "validate_ledger",
]

_VERSION = 1
_MAX_BYTES = 16 * 1024 * 1024
_TOLERANCE = 1e-9
_RULE = "(rule: ledger integrity)"
_ACCOUNTANT_NUMBERS = ("noise_multiplier", "sample_rate")
_HISTORY = ("history_sigma", "history_q", "history_steps")
# What a run entry spent its budget on; an entry without ``kind`` (older ledgers) is training.
RUN_KINDS = ("training", "analysis")


class LedgerError(PrivacyError):
    """The ledger file is unreadable or malformed; the node refuses to train (fail closed)."""


class BudgetRefused(PrivacyError):
    """A run would exceed the node's lifetime privacy budget."""


@dataclass(frozen=True)
class RunCharge:
    """One run's entry in the ledger."""

    run_id: str
    reserved_epsilon: float
    spent_epsilon: float
    delta: float
    steps: int
    kind: str = "training"

    @property
    def charge(self) -> float:
        """What the run costs the node's lifetime budget: max(reserved, spent)."""
        return max(self.reserved_epsilon, self.spent_epsilon)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(where: str, field: str, value: Any, *, positive: bool = False) -> float:
    if not _is_number(value):
        raise LedgerError(f"{where}: field '{field}' must be a number {_RULE}")
    number = float(value)
    if not math.isfinite(number):
        raise LedgerError(f"{where}: field '{field}' must be finite {_RULE}")
    if number < 0 or (positive and number == 0):
        sign = "positive" if positive else "non-negative"
        raise LedgerError(f"{where}: field '{field}' must be {sign} {_RULE}")
    return number


def _count(where: str, field: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise LedgerError(f"{where}: field '{field}' must be a non-negative integer {_RULE}")
    return value


def _validate_accountant(where: str, field: str, raw: Any, steps: int) -> None:
    if not isinstance(raw, dict):
        raise LedgerError(f"{where}: field '{field}' must be an object {_RULE}")
    if not isinstance(raw.get("mechanism"), str) or not raw["mechanism"]:
        raise LedgerError(f"{where}: field '{field}.mechanism' must be a name {_RULE}")
    for name in _ACCOUNTANT_NUMBERS:
        _number(where, f"{field}.{name}", raw.get(name), positive=True)
    if float(raw["sample_rate"]) > 1:
        raise LedgerError(f"{where}: field '{field}.sample_rate' must be at most 1 {_RULE}")
    _count(where, f"{field}.planned_steps", raw.get("planned_steps"))
    lists = [raw.get(name) for name in _HISTORY]
    if not all(isinstance(v, list) for v in lists) or len({len(v) for v in lists}) != 1:
        raise LedgerError(
            f"{where}: field '{field}' history lists must be lists of one length {_RULE}"
        )
    for sigma, q in zip(lists[0], lists[1], strict=True):
        _number(where, f"{field}.history_sigma", sigma, positive=True)
        if _number(where, f"{field}.history_q", q, positive=True) > 1:
            raise LedgerError(f"{where}: field '{field}.history_q' must be at most 1 {_RULE}")
    taken = sum(_count(where, f"{field}.history_steps", n) for n in lists[2])
    if taken != steps:
        raise LedgerError(
            f"{where}: field '{field}.history_steps' does not add up to the run's steps {_RULE}"
        )


def validate_ledger(data: Any, source: str, node: str | None = None) -> dict[str, Any]:
    """Check a parsed ledger strictly; returns it, or raises :class:`LedgerError` (one line)."""
    if not isinstance(data, dict):
        raise LedgerError(f"{source}: the budget ledger must be a JSON object {_RULE}")
    if data.get("version") != _VERSION or isinstance(data.get("version"), bool):
        raise LedgerError(f"{source}: field 'version' must be {_VERSION} {_RULE}")
    if not isinstance(data.get("node"), str):
        raise LedgerError(f"{source}: field 'node' must be the node's name {_RULE}")
    if node is not None and data["node"] != node:
        raise LedgerError(
            f"{source}: field 'node': the budget ledger belongs to another node; refusing to "
            f"train {_RULE}"
        )
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise LedgerError(f"{source}: field 'runs' must be a list {_RULE}")
    seen: set[str] = set()
    total = 0.0
    for i, run in enumerate(runs):
        where = f"{source}: runs[{i}]"
        if not isinstance(run, dict):
            raise LedgerError(f"{where}: must be an object {_RULE}")
        run_id = run.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise LedgerError(f"{where}: field 'run_id' must be a non-empty string {_RULE}")
        if run_id in seen:
            raise LedgerError(f"{where}: field 'run_id' repeats an earlier run {_RULE}")
        seen.add(run_id)
        reserved = _number(where, "reserved_epsilon", run.get("reserved_epsilon"))
        spent = _number(where, "spent_epsilon", run.get("spent_epsilon"))
        if _number(where, "delta", run.get("delta")) >= 1:
            raise LedgerError(f"{where}: field 'delta' must be below 1 {_RULE}")
        steps = _count(where, "steps", run.get("steps"))
        for stamp in ("started", "updated"):
            if stamp in run and not isinstance(run[stamp], str):
                raise LedgerError(f"{where}: field '{stamp}' must be a timestamp string {_RULE}")
        if "accountant" in run:
            _validate_accountant(where, "accountant", run["accountant"], steps)
        if "kind" in run and run["kind"] not in RUN_KINDS:
            raise LedgerError(
                f"{where}: field 'kind' must be one of {', '.join(RUN_KINDS)} {_RULE}"
            )
        total += max(reserved, spent)
    if "lifetime_epsilon" in data:
        _number(source, "lifetime_epsilon", data["lifetime_epsilon"])
    if "lifetime_spent" in data:
        stored = _number(source, "lifetime_spent", data["lifetime_spent"])
        if abs(stored - total) > _TOLERANCE * max(1.0, total):
            raise LedgerError(
                f"{source}: field 'lifetime_spent' differs from the sum of the runs' charges "
                f"{_RULE}"
            )
    return data


def budget_anchor(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """What the run ledger records of a node's budget ledger: its lifetime spend, its number
    of runs and the SHA-256 of its runs (canonical JSON). A later ledger with less spend or
    fewer runs was deleted or rewound."""
    runs = list(snapshot.get("runs") or [])
    spent = sum(max(float(r["reserved_epsilon"]), float(r["spent_epsilon"])) for r in runs)
    payload = json.dumps(runs, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return {
        "lifetime_spent": spent,
        "runs": len(runs),
        "runs_sha256": hashlib.sha256(payload.encode("utf-8")).hexdigest(),
    }


class BudgetLedger:
    """The budget ledger of one node, stored at ``path``."""

    def __init__(self, path: str | Path, node: str, lifetime_epsilon: float) -> None:
        self.path = Path(path)
        self.node = node
        self.lifetime_epsilon = float(lifetime_epsilon)

    def __repr__(self) -> str:
        return f"BudgetLedger({str(self.path)!r}, node={self.node!r})"

    def exists(self) -> bool:
        """Whether the ledger file exists (a node that never spent has none)."""
        return self.path.exists() or self.path.is_symlink()

    def _read(self) -> dict[str, Any]:
        if not self.exists():
            return {"version": _VERSION, "node": self.node, "runs": []}
        try:
            raw = read_regular_file(self.path, "budget ledger", max_bytes=_MAX_BYTES)
        except ConfideError as exc:
            raise LedgerError(f"{exc}; refusing to train {_RULE}") from None
        try:
            data = json.loads(raw.decode("utf-8"))  # NaN/Infinity: refused per field
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise LedgerError(
                f"{self.path}: the budget ledger is not valid JSON ({type(exc).__name__}); "
                f"refusing to train {_RULE}"
            ) from None
        return validate_ledger(data, str(self.path), self.node)

    def _write(self, data: dict[str, Any]) -> None:
        data["lifetime_epsilon"] = self.lifetime_epsilon
        data["lifetime_spent"] = _lifetime_spent(data["runs"])
        validate_ledger(data, str(self.path), self.node)  # never write what would not load
        atomic_write_json(self.path, data)

    def check(self) -> dict[str, Any]:
        """Read and validate the ledger (LedgerError on any broken rule); returns a copy."""
        return self.snapshot()

    def runs(self) -> list[RunCharge]:
        """Every run recorded so far."""
        return [
            RunCharge(
                r["run_id"],
                float(r["reserved_epsilon"]),
                float(r["spent_epsilon"]),
                float(r["delta"]),
                int(r["steps"]),
                str(r.get("kind", "training")),
            )
            for r in self._read()["runs"]
        ]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The validated entry of ``run_id`` (with its accountant state), or None."""
        for run in self._read()["runs"]:
            if run["run_id"] == run_id:
                return run
        return None

    def spent(self, excluding_run: str | None = None) -> float:
        """Lifetime epsilon charged so far (optionally without one run)."""
        return sum(r.charge for r in self.runs() if r.run_id != excluding_run)

    def cap(self, run_id: str) -> float:
        """The most epsilon ``run_id`` may reach: its reservation, and no more than the
        lifetime budget left after every other run."""
        entry = self.run(run_id)
        if entry is None:
            raise LedgerError(
                f"{self.path}: run '{run_id}' was never reserved in the ledger "
                "(rule: reserve before training)"
            )
        others = self.spent(excluding_run=run_id)
        return max(0.0, min(float(entry["reserved_epsilon"]), self.lifetime_epsilon - others))

    def reserve(
        self,
        run_id: str,
        planned_epsilon: float,
        delta: float,
        accountant: Mapping[str, Any] | None = None,
        kind: str = "training",
    ) -> float:
        """Reserve a run's planned epsilon; refuse it if the lifetime budget would be exceeded.

        ``accountant`` is the run's calibrated accountant state, kept with the reservation;
        ``kind`` what the budget is for (:data:`RUN_KINDS`; stored only for non-training runs,
        so training entries keep their earlier shape). Returns the lifetime epsilon remaining
        after the reservation. Idempotent per run id.
        """
        planned = _number(f"{self.path}: reservation", "planned_epsilon", planned_epsilon)
        if kind not in RUN_KINDS:
            raise LedgerError(
                f"{self.path}: reservation kind must be one of {', '.join(RUN_KINDS)} {_RULE}"
            )
        with file_lock(self.path):
            data = self._read()
            spent = _lifetime_spent(data["runs"])
            if any(r["run_id"] == run_id for r in data["runs"]):
                return self.lifetime_epsilon - spent
            if spent + planned > self.lifetime_epsilon + _TOLERANCE:
                raise BudgetRefused(
                    f"{self.path}: node '{self.node}' has spent epsilon {spent:.3f} of its "
                    f"lifetime {self.lifetime_epsilon:.3f}; a run planning {planned:.3f} "
                    "would exceed it (rule: lifetime_epsilon)"
                )
            entry: dict[str, Any] = {
                "run_id": run_id,
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
                "reserved_epsilon": planned,
                "spent_epsilon": 0.0,
                "delta": float(delta),
                "steps": 0,
            }
            if accountant is not None:
                entry["accountant"] = dict(accountant)
            if kind != "training":
                entry["kind"] = kind
            data["runs"].append(entry)
            self._write(data)
            return self.lifetime_epsilon - spent - planned

    def record(
        self,
        run_id: str,
        spent_epsilon: float,
        steps: int,
        accountant: Mapping[str, Any] | None = None,
        expect_steps: int | None = None,
    ) -> None:
        """Record the run's cumulative epsilon, steps and accountant state after a round.

        Refused (nothing written) when the spend or the steps would go down, or the spend would
        pass the run's reservation: a ledger only ever charges more. ``expect_steps``: refuse
        unless the run has taken exactly that many steps (compare-and-set under the lock, so a
        step charged before it is computed is charged once, never replayed).
        """
        where = f"{self.path}: run '{run_id}'"
        spent = _number(where, "spent_epsilon", spent_epsilon)
        with file_lock(self.path):
            data = self._read()
            for run in data["runs"]:
                if run["run_id"] == run_id:
                    break
            else:
                raise LedgerError(
                    f"{self.path}: run '{run_id}' was never reserved in the ledger "
                    "(rule: reserve before training)"
                )
            if expect_steps is not None and int(run["steps"]) != expect_steps:
                raise LedgerError(
                    f"{where}: field 'steps': this step was already charged or comes out of "
                    "order (rule: step order)"
                )
            if spent < float(run["spent_epsilon"]) or int(steps) < int(run["steps"]):
                raise LedgerError(
                    f"{where}: field 'spent_epsilon' would decrease; a run's spend never goes "
                    "down (rule: monotone spend)"
                )
            if spent > float(run["reserved_epsilon"]) + _TOLERANCE:
                raise LedgerError(
                    f"{where}: field 'spent_epsilon' would pass the run's reservation "
                    "(rule: reservation)"
                )
            run["spent_epsilon"] = spent
            run["steps"] = int(steps)
            if accountant is not None:
                run["accountant"] = dict(accountant)
            run["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
            self._write(data)

    def snapshot(self) -> dict[str, Any]:
        """The ledger's current content (for run outputs)."""
        data = self._read()
        data["lifetime_epsilon"] = self.lifetime_epsilon
        data["lifetime_spent"] = _lifetime_spent(data["runs"])
        return data


def _lifetime_spent(runs: list[dict[str, Any]]) -> float:
    return sum(max(float(r["reserved_epsilon"]), float(r["spent_epsilon"])) for r in runs)
