"""The budget ledger and the run ledger record what a run spent its budget on (training or
analysis), backward compatibly; an analysis step is charged once (compare-and-set on steps)."""

from __future__ import annotations

import hashlib
import json

import pytest

from confide.privacy.budget_ledger import BudgetLedger, BudgetRefused, LedgerError
from confide.privacy.run_ledger import RunLedger, RunLedgerError, canonical_json


def test_kind_is_kept_and_old_entries_read_as_training(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.json", "retailer", 10.0)
    ledger.reserve("train-1", 3.0, 1e-5)
    ledger.reserve("analysis-1", 2.0, 0.0, kind="analysis")
    raw = json.loads(ledger.path.read_text())
    # training entries keep their earlier shape (no 'kind'): older readers still load them
    assert "kind" not in raw["runs"][0] and raw["runs"][1]["kind"] == "analysis"
    assert [(r.run_id, r.kind) for r in ledger.runs()] == [
        ("train-1", "training"),
        ("analysis-1", "analysis"),
    ]
    # one lifetime budget for both kinds: 3 + 2 spent, 6 more would pass 10
    assert ledger.spent() == pytest.approx(5.0, abs=1e-12)
    with pytest.raises(BudgetRefused, match="rule: lifetime_epsilon"):
        ledger.reserve("analysis-2", 6.0, 0.0, kind="analysis")
    ledger.reserve("analysis-3", 5.0, 0.0, kind="analysis")  # control: exactly the remainder


def test_unknown_kind_is_refused_on_reserve_and_on_read(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.json", "retailer", 10.0)
    with pytest.raises(LedgerError, match="reservation kind"):
        ledger.reserve("r", 1.0, 0.0, kind="marketing")
    assert not ledger.exists()  # nothing written
    ledger.reserve("r", 1.0, 0.0, kind="analysis")
    raw = json.loads(ledger.path.read_text())
    raw["runs"][0]["kind"] = "marketing"
    ledger.path.write_text(json.dumps(raw))
    with pytest.raises(LedgerError, match=r"runs\[0\]: field 'kind'"):
        ledger.runs()


def test_expect_steps_charges_a_step_once(tmp_path):
    ledger = BudgetLedger(tmp_path / "ledger.json", "retailer", 10.0)
    ledger.reserve("a", 2.0, 0.0, kind="analysis")
    ledger.record("a", 1.0, 1, expect_steps=0)
    before = ledger.path.read_bytes()
    with pytest.raises(LedgerError, match="rule: step order"):
        ledger.record("a", 1.5, 1, expect_steps=0)  # the same step again: a replay
    assert ledger.path.read_bytes() == before
    ledger.record("a", 1.5, 2, expect_steps=1)  # control: the next step in order is charged
    assert ledger.run("a")["steps"] == 2


def _append(book: RunLedger, run_id: str, **kwargs) -> dict:
    return book.append(
        run_id=run_id,
        config_sha256=hashlib.sha256(run_id.encode()).hexdigest(),
        policy_sha256={"retailer": "a" * 64},
        epsilon={"retailer": 2.0},
        model_sha256=None,
        outcome="completed",
        **kwargs,
    )


def test_run_ledger_kind_is_chained_and_optional(tmp_path):
    book = RunLedger(tmp_path / "run-ledger.jsonl")
    first = _append(book, "train-1")
    second = _append(book, "analysis-1", kind="analysis")
    assert "kind" not in first and second["kind"] == "analysis"
    assert book.verify().ok
    # the kind is covered by the hash: rewriting it (training <- analysis) is detected
    rows = book.path.read_text().splitlines()
    rec = json.loads(rows[1])
    rec["kind"] = "training"
    rows[1] = canonical_json(rec).decode()
    book.path.write_text("\n".join(rows) + "\n")
    assert not book.verify().ok


def test_run_ledger_refuses_an_unknown_kind(tmp_path):
    book = RunLedger(tmp_path / "run-ledger.jsonl")
    with pytest.raises(RunLedgerError, match="kind must be training or analysis"):
        _append(book, "x", kind="marketing")
    assert not book.path.exists()
