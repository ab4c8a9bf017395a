"""The node's DP budget ledger: reservations, lifetime refusal, atomic and fail-closed."""

import json
import os

import pytest

from confide.privacy.budget_ledger import (
    BudgetLedger,
    BudgetRefused,
    LedgerError,
    atomic_write_text,
)


def test_reserve_record_and_refuse_past_lifetime(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.json", "shop", lifetime_epsilon=5.0)
    assert ledger.reserve("run-1", 3.0, 1e-5) == pytest.approx(2.0)
    ledger.record("run-1", 2.5, steps=40)
    assert ledger.spent() == pytest.approx(3.0)  # max(reserved, spent)
    assert ledger.reserve("run-1", 3.0, 1e-5) == pytest.approx(2.0)  # idempotent per run
    before = (tmp_path / "ledger.json").read_bytes()
    with pytest.raises(BudgetRefused, match="lifetime_epsilon"):
        ledger.reserve("run-2", 2.5, 1e-5)
    assert (tmp_path / "ledger.json").read_bytes() == before  # a refusal writes nothing
    assert ledger.reserve("run-3", 2.0, 1e-5) == pytest.approx(0.0)


def test_spent_epsilon_above_reservation_is_charged(tmp_path):
    ledger = BudgetLedger(tmp_path / "l.json", "shop", 10.0)
    ledger.reserve("r", 1.0, 1e-5)
    ledger.record("r", 1.7, steps=3)
    assert ledger.spent() == pytest.approx(1.7)
    assert ledger.spent(excluding_run="r") == 0.0


def test_record_without_reservation_is_refused(tmp_path):
    ledger = BudgetLedger(tmp_path / "l.json", "shop", 10.0)
    with pytest.raises(LedgerError, match="never reserved"):
        ledger.record("ghost", 1.0, 1)


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"version": 99, "runs": []}), json.dumps([1, 2])]
)
def test_corrupt_ledger_fails_closed(tmp_path, content):
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(LedgerError, match="ledger integrity"):
        BudgetLedger(path, "shop", 10.0).reserve("r", 1.0, 1e-5)


def test_ledger_of_another_node_is_refused(tmp_path):
    path = tmp_path / "l.json"
    BudgetLedger(path, "shop", 10.0).reserve("r", 1.0, 1e-5)
    with pytest.raises(LedgerError, match="another node"):
        BudgetLedger(path, "bank", 10.0).spent()


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "l.json"
    atomic_write_text(path, "old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["l.json"]  # no temp file left
