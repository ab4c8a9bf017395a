"""A node's differential-privacy budget ledger: one JSON file, written atomically.

Each run a node takes part in reserves its planned epsilon *before* any training; a run whose
reservation would take the node past its lifetime epsilon is refused. As rounds complete the
run's spent epsilon is recorded. The lifetime charge of a run is max(reserved, spent): a run that
stops early still counts what it reserved, so the ledger never under-counts (basic sequential
composition across runs, which is conservative).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confide.privacy.errors import PrivacyError

__all__ = ["BudgetLedger", "BudgetRefused", "LedgerError", "atomic_write_text"]

_VERSION = 1


class LedgerError(PrivacyError):
    """The ledger file is unreadable or malformed; the node refuses to train (fail closed)."""


class BudgetRefused(PrivacyError):
    """A run would exceed the node's lifetime privacy budget."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class RunCharge:
    """One run's entry in the ledger."""

    run_id: str
    reserved_epsilon: float
    spent_epsilon: float
    delta: float
    steps: int

    @property
    def charge(self) -> float:
        return max(self.reserved_epsilon, self.spent_epsilon)


class BudgetLedger:
    """The budget ledger of one node, stored at ``path``."""

    def __init__(self, path: str | Path, node: str, lifetime_epsilon: float) -> None:
        self.path = Path(path)
        self.node = node
        self.lifetime_epsilon = float(lifetime_epsilon)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"version": _VERSION, "node": self.node, "runs": []}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LedgerError(
                f"{self.path}: the budget ledger is unreadable ({type(exc).__name__}); "
                "refusing to train (rule: ledger integrity)"
            ) from exc
        if (
            not isinstance(data, dict)
            or data.get("version") != _VERSION
            or not isinstance(data.get("runs"), list)
        ):
            raise LedgerError(
                f"{self.path}: the budget ledger is malformed; refusing to train "
                "(rule: ledger integrity)"
            )
        if data.get("node") != self.node:
            raise LedgerError(
                f"{self.path}: the budget ledger belongs to another node; refusing to train "
                "(rule: ledger integrity)"
            )
        return data

    def _write(self, data: dict[str, Any]) -> None:
        data["lifetime_epsilon"] = self.lifetime_epsilon
        data["lifetime_spent"] = sum(_charge(r) for r in data["runs"])
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def runs(self) -> list[RunCharge]:
        """Every run recorded so far."""
        return [
            RunCharge(
                r["run_id"], r["reserved_epsilon"], r["spent_epsilon"], r["delta"], r["steps"]
            )
            for r in self._read()["runs"]
        ]

    def spent(self, excluding_run: str | None = None) -> float:
        """Lifetime epsilon charged so far (optionally without one run)."""
        return sum(r.charge for r in self.runs() if r.run_id != excluding_run)

    def reserve(self, run_id: str, planned_epsilon: float, delta: float) -> float:
        """Reserve a run's planned epsilon; refuse it if the lifetime budget would be exceeded.

        Returns the lifetime epsilon remaining after the reservation. Idempotent per run id.
        """
        with self._locked():
            data = self._read()
            if any(r["run_id"] == run_id for r in data["runs"]):
                return self.lifetime_epsilon - sum(_charge(r) for r in data["runs"])
            spent = sum(_charge(r) for r in data["runs"])
            if spent + planned_epsilon > self.lifetime_epsilon + 1e-9:
                raise BudgetRefused(
                    f"{self.path}: node '{self.node}' has spent epsilon {spent:.3f} of its "
                    f"lifetime {self.lifetime_epsilon:.3f}; a run planning {planned_epsilon:.3f} "
                    "would exceed it (rule: lifetime_epsilon)"
                )
            data["runs"].append(
                {
                    "run_id": run_id,
                    "started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "reserved_epsilon": float(planned_epsilon),
                    "spent_epsilon": 0.0,
                    "delta": float(delta),
                    "steps": 0,
                }
            )
            self._write(data)
            return self.lifetime_epsilon - spent - planned_epsilon

    def record(self, run_id: str, spent_epsilon: float, steps: int) -> None:
        """Record the run's cumulative epsilon and steps after a completed round."""
        with self._locked():
            data = self._read()
            for run in data["runs"]:
                if run["run_id"] == run_id:
                    run["spent_epsilon"] = float(spent_epsilon)
                    run["steps"] = int(steps)
                    run["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
                    break
            else:
                raise LedgerError(
                    f"{self.path}: run '{run_id}' was never reserved in the ledger "
                    "(rule: reserve before training)"
                )
            self._write(data)

    def snapshot(self) -> dict[str, Any]:
        """The ledger's current content (for run outputs)."""
        data = self._read()
        data["lifetime_epsilon"] = self.lifetime_epsilon
        data["lifetime_spent"] = sum(_charge(r) for r in data["runs"])
        return data


def _charge(run: dict[str, Any]) -> float:
    return max(float(run["reserved_epsilon"]), float(run["spent_epsilon"]))
