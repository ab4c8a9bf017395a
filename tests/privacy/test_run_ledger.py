"""The run ledger: hash chain, head sidecar, optional HMAC; every kind of tampering detected."""

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from confide.privacy.keys import new_keyring_file
from confide.privacy.run_ledger import (
    GENESIS,
    RunLedger,
    RunLedgerError,
    append_run,
    canonical_json,
    load_ledger_key,
    run_epsilon_from_snapshots,
)

H = "a" * 64


def add(book: RunLedger, i: int) -> dict:
    return book.append(
        run_id=f"run-{i}",
        config_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
        policy_sha256={"retailer": H, "ecommerce": "b" * 64},
        epsilon={"retailer": 1.5 + i, "ecommerce": 2.0},
        model_sha256="c" * 64 if i % 2 else None,
        outcome="completed" if i % 2 else "stopped",
    )


@pytest.fixture
def book(tmp_path) -> RunLedger:
    book = RunLedger(tmp_path / "run-ledger.jsonl")
    for i in range(1, 5):
        add(book, i)
    return book


def lines(book: RunLedger) -> list[str]:
    return book.path.read_text(encoding="utf-8").splitlines()


def write(book: RunLedger, rows: list[str]) -> None:
    book.path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")


def rehash(rec: dict) -> dict:
    body = {k: v for k, v in rec.items() if k not in ("hash", "mac", "mac_key")}
    rec["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    return rec


def test_appended_records_chain_and_verify(book):
    state = book.verify()
    assert state.ok and state.count == 4 and state.first_bad is None
    recs = book.records()
    assert [r["seq"] for r in recs] == [1, 2, 3, 4]
    assert recs[0]["prev"] == GENESIS and recs[1]["prev"] == recs[0]["hash"]
    assert state.head == recs[-1]["hash"]
    assert set(recs[0]) == {
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
    }
    assert recs[0]["time"].endswith("Z") and recs[0]["nodes"] == ["ecommerce", "retailer"]
    assert json.loads(book.head_path.read_text())["count"] == 4


def test_edited_record_is_named(book):
    rows = lines(book)
    rows[1] = rows[1].replace('"retailer":3.5', '"retailer":0.5')
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 2
    assert "record 2 (run run-2)" in state.message and "edited" in state.message


def test_edited_and_rehashed_record_breaks_the_next_link(book):
    rows = lines(book)
    rec = json.loads(rows[1])
    rec["epsilon"]["retailer"] = 0.5
    rows[1] = json.dumps(rehash(rec))
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 3
    assert "record 3" in state.message and "record 2 was edited" in state.message


def test_edited_last_record_rehashed_is_caught_by_the_head(book):
    rows = lines(book)
    rec = json.loads(rows[3])
    rec["outcome"] = "completed" if rec["outcome"] == "stopped" else "stopped"
    rows[3] = json.dumps(rehash(rec))
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 4 and "head" in state.message


def test_deleted_record_is_named(book):
    rows = lines(book)
    del rows[1]
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 2
    assert "record 2 (run run-3)" in state.message and "deleted" in state.message


def test_reordered_records_are_named(book):
    rows = lines(book)
    rows[1], rows[2] = rows[2], rows[1]
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 2 and "moved" in state.message


def test_inserted_record_is_named(book):
    rows = lines(book)
    fake = json.loads(rows[1])
    fake["run_id"] = "inserted"
    rows.insert(2, json.dumps(rehash(fake)))
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 3


def test_truncation_is_named(book):
    write(book, lines(book)[:2])
    state = book.verify()
    assert not state.ok and state.first_bad == 3
    assert "record 3: missing" in state.message and "truncated" in state.message


def test_torn_last_line_is_named(book):
    raw = book.path.read_bytes()
    book.path.write_bytes(raw[:-20])
    state = book.verify()
    assert not state.ok and state.first_bad == 4 and "not a valid JSON line" in state.message


def test_forged_appended_record_is_named(book):
    rows = lines(book)
    last = json.loads(rows[-1])
    forged = {**last, "seq": 5, "prev": last["hash"], "run_id": "forged", "outcome": "completed"}
    rows.append(json.dumps(rehash(forged)))
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 5
    assert "record 5 (run forged)" in state.message and "not covered by the head" in state.message


def test_hmac_catches_a_forgery_that_also_rewrites_the_head(tmp_path):
    new_keyring_file(tmp_path / "k.json")
    key = load_ledger_key(tmp_path / "k.json")
    book = RunLedger(tmp_path / "l.jsonl", key)
    for i in range(1, 4):
        add(book, i)
    assert book.verify().ok and book.verify().macs_checked
    rows = lines(book)
    last = json.loads(rows[-1])
    forged = rehash({**last, "seq": 4, "prev": last["hash"], "run_id": "forged"})
    rows.append(json.dumps(forged))
    write(book, rows)
    head = json.loads(book.head_path.read_text())
    head.update(count=4, head=forged["hash"])
    book.head_path.write_text(json.dumps(head))
    state = book.verify()
    assert not state.ok and state.first_bad == 4 and "HMAC" in state.message
    assert RunLedger(book.path, None).verify().ok  # without the key, a full rewrite passes
    new_keyring_file(tmp_path / "k2.json")
    other = load_ledger_key(tmp_path / "k2.json")
    assert not RunLedger(book.path, other).verify().ok  # a wrong key never verifies
    assert load_ledger_key(None, env={}) is None


def test_missing_head_is_reported(book):
    book.head_path.unlink()
    state = book.verify()
    assert not state.ok and "head file" in state.message


def test_append_refuses_a_tampered_ledger(book):
    write(book, lines(book)[:3])
    with pytest.raises(RunLedgerError, match="refusing to append") as err:
        add(book, 9)
    assert "record 4" in str(err.value)
    assert len(lines(book)) == 3


def test_record_fields_are_validated_and_hold_no_config_values(tmp_path):
    book = RunLedger(tmp_path / "l.jsonl")
    with pytest.raises(RunLedgerError, match="hashes"):
        book.append(
            run_id="r",
            config_sha256="secret",
            policy_sha256={},
            epsilon={},
            model_sha256=None,
            outcome="completed",
        )
    with pytest.raises(RunLedgerError, match="outcome"):
        book.append(
            run_id="r",
            config_sha256=H,
            policy_sha256={},
            epsilon={},
            model_sha256=None,
            outcome="ok",
        )
    with pytest.raises(RunLedgerError, match="epsilon"):
        book.append(
            run_id="r",
            config_sha256=H,
            policy_sha256={},
            epsilon={"a": float("nan")},
            model_sha256=None,
            outcome="completed",
        )
    model = tmp_path / "model.pt"
    model.write_bytes(b"weights")
    config = {"federation": {"secret_note": "Zq9-raw-value"}, "dp": {"epsilon": 3.0}}
    rec = append_run(
        book.path,
        run_id="r1",
        config=config,
        policy_sha256={"a": H},
        epsilon={"a": 2.9},
        model_path=model,
        outcome="completed",
    )
    assert rec["config_sha256"] == hashlib.sha256(canonical_json(config)).hexdigest()
    assert rec["model_sha256"] == hashlib.sha256(b"weights").hexdigest()
    assert "Zq9-raw-value" not in book.path.read_text()


def test_epsilon_from_budget_ledger_snapshots():
    snaps = {
        "a": {
            "runs": [{"run_id": "x", "spent_epsilon": 2.5}, {"run_id": "y", "spent_epsilon": 1.0}]
        },
        "b": {"runs": []},
    }
    assert run_epsilon_from_snapshots(snaps, "x") == {"a": 2.5, "b": 0.0}


def _append_many(path: str, start: int) -> None:
    book = RunLedger(Path(path))
    for i in range(start, start + 3):
        add(book, i)


def test_concurrent_appends_keep_the_chain(tmp_path):
    path = str(tmp_path / "l.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, 10 * k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    state = RunLedger(Path(path)).verify()
    assert state.ok and state.count == 9
