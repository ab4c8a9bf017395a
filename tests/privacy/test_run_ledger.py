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


def test_torn_last_line_is_named_and_repaired_with_a_backup(book):
    raw = book.path.read_bytes()
    third = book.records()[2]["hash"]
    book.path.write_bytes(raw[:-20])  # the append of record 4 died mid-line: head still at 3
    book.head_path.write_text(json.dumps({"count": 3, "head": third}))
    state = book.verify()
    assert not state.ok and state.first_bad == 4
    assert "record 4 is a torn last line" in state.message
    assert "confide ledger repair" in state.message
    with pytest.raises(RunLedgerError, match="torn last line"):
        add(book, 5)  # every later run is blocked until the repair
    entry = book.repair()
    cut = raw.rfind(b"\n", 0, len(raw) - 1) + 1
    assert entry["kind"] == "partial last line" and entry["kept_records"] == 3
    assert entry["removed_bytes"] == len(raw) - 20 - cut
    backup = book.path.with_name(entry["backup"])
    assert backup.read_bytes() == raw[cut:-20]  # the removed bytes, kept
    assert entry["removed_sha256"] == hashlib.sha256(raw[cut:-20]).hexdigest()
    log = book.path.with_name(book.path.name + ".repairs").read_text(encoding="utf-8")
    assert [json.loads(row) for row in log.splitlines()] == [entry]
    assert book.path.read_bytes() == raw[:cut]
    assert book.verify().ok
    assert add(book, 5)["seq"] == 4  # appends work again


def test_append_killed_before_the_head_update_is_repaired(book):
    head = book.head_path.read_bytes()
    before = book.path.read_bytes()
    add(book, 5)
    book.head_path.write_bytes(head)  # the head update never happened
    state = book.verify()
    assert not state.ok and state.first_bad == 5 and "confide ledger repair" in state.message
    entry = book.repair()
    assert entry["kind"] == "last record not in the head" and entry["kept_records"] == 4
    assert book.path.read_bytes() == before and book.verify().ok
    assert json.loads(book.path.with_name(entry["backup"]).read_bytes())["run_id"] == "run-5"


@pytest.mark.parametrize("damage", ["edited middle record", "truncated", "intact"])
def test_repair_refuses_anything_but_a_torn_last_line(book, damage):
    rows = lines(book)
    if damage == "edited middle record":
        rows[1] = rows[1].replace("run-2", "run-X")
        write(book, rows)
    elif damage == "truncated":
        write(book, rows[:2])
    before = book.path.read_bytes()
    with pytest.raises(RunLedgerError, match="rule: run ledger repair") as err:
        book.repair()
    expected = "nothing to repair" if damage == "intact" else "not a torn last line"
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert book.path.read_bytes() == before
    assert not list(book.path.parent.glob("*.bak"))


def test_partial_last_line_over_a_broken_ledger_is_not_repaired(book):
    book.head_path.write_text(json.dumps({"count": 3, "head": book.records()[2]["hash"]}))
    rows = lines(book)
    rows[1] = rows[1].replace("run-2", "run-X")
    book.path.write_bytes("".join(r + "\n" for r in rows).encode()[:-20])
    before = book.path.read_bytes()
    with pytest.raises(RunLedgerError, match="still fails"):
        book.repair()
    assert book.path.read_bytes() == before


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


# ---------------------------------------------------------------- the MAC key's own purpose


def test_mac_key_is_no_policy_subkey(tmp_path):
    from confide.privacy.keys import PURPOSES, Keyring

    new_keyring_file(tmp_path / "k.json")
    kid, key = load_ledger_key(tmp_path / "k.json")
    keyring = Keyring.from_file(tmp_path / "k.json")
    assert kid == keyring.active and len(key) == 32
    for purpose in PURPOSES:  # what a policy with dataset confide-run-ledger could derive
        assert keyring.subkey(purpose, "confide-run-ledger", "record-mac")[:32] != key
    assert "key=" not in repr(load_ledger_key(tmp_path / "k.json"))


def _legacy_ledger(tmp_path, n=2):
    """A ledger exactly as the pseudonym-subkey MAC wrote it (records + head)."""
    import hmac as _hmac

    from confide.privacy.keys import Keyring

    new_keyring_file(tmp_path / "k.json")
    keyring = Keyring.from_file(tmp_path / "k.json")
    legacy = keyring.subkey("pseudonym", "confide-run-ledger", "record-mac")
    book = RunLedger(tmp_path / "l.jsonl")
    for i in range(1, n + 1):
        add(book, i)
    rows = []
    for row in lines(book):
        rec = json.loads(row)
        body = {k: v for k, v in rec.items() if k not in ("hash", "mac", "mac_key")}
        rec["mac"] = _hmac.new(legacy, canonical_json(body), hashlib.sha256).hexdigest()
        rec["mac_key"] = keyring.active
        rows.append(json.dumps(rec))
    write(book, rows)
    head = json.loads(book.head_path.read_text())
    payload = canonical_json({**head, "ledger": "confide-run-ledger/v1"})
    head["mac"] = _hmac.new(legacy, payload, hashlib.sha256).hexdigest()
    head["mac_key"] = keyring.active
    book.head_path.write_text(json.dumps(head))
    return book.path, legacy


def test_legacy_ledger_is_migrated_exactly_once(tmp_path):
    path, legacy = _legacy_ledger(tmp_path)
    key = load_ledger_key(tmp_path / "k.json")
    book = RunLedger(path, key)
    state = book.verify()
    assert state.ok and state.legacy_mac and "legacy" in state.message
    migrated = book.migrate_key()
    assert migrated["records"] == 2 and migrated["from"] == "pseudonym-subkey"
    head = json.loads(book.head_path.read_text())
    assert head["mac_scheme"] == "confide-run-ledger-mac/v2" and head["migrated"] == migrated
    state = book.verify()
    assert state.ok and not state.legacy_mac and state.macs_checked
    assert book.migrate_key() is None  # once
    add(book, 3)
    assert json.loads(book.head_path.read_text())["migrated"] == migrated  # kept in the head
    assert book.verify().ok
    # after the migration a record MAC'd under the legacy key no longer verifies
    rows = lines(book)
    rec = json.loads(rows[0])
    import hmac as _hmac

    body = {k: v for k, v in rec.items() if k not in ("hash", "mac", "mac_key")}
    rec["mac"] = _hmac.new(legacy, canonical_json(body), hashlib.sha256).hexdigest()
    rows[0] = json.dumps(rec)
    write(book, rows)
    state = book.verify()
    assert not state.ok and state.first_bad == 1 and "HMAC does not verify" in state.message


def test_append_migrates_a_legacy_ledger_first(tmp_path):
    path, _ = _legacy_ledger(tmp_path)
    book = RunLedger(path, load_ledger_key(tmp_path / "k.json"))
    add(book, 3)
    head = json.loads(book.head_path.read_text())
    assert head["migrated"]["records"] == 2 and head["count"] == 3
    assert book.verify().ok and not book.verify().legacy_mac


def test_tampered_legacy_ledger_is_not_migrated(tmp_path):
    path, _ = _legacy_ledger(tmp_path)
    book = RunLedger(path, load_ledger_key(tmp_path / "k.json"))
    rows = lines(book)
    rows[0] = json.dumps(rehash({**json.loads(rows[0]), "outcome": "stopped"}))
    write(book, rows)
    before = (path.read_bytes(), book.head_path.read_bytes())
    with pytest.raises(RunLedgerError, match="refusing to migrate"):
        book.migrate_key()
    assert (path.read_bytes(), book.head_path.read_bytes()) == before


# ---------------------------------------------------------------- budget ledgers anchored


def test_deleted_or_rewound_budget_ledger_is_detected(tmp_path):
    from confide.privacy.budget_ledger import BudgetLedger, LedgerError
    from confide.privacy.run_ledger import check_budget_continuity

    node = BudgetLedger(tmp_path / "node" / "ledger.json", "retailer", 10.0)
    node.reserve("run-1", 3.0, 1e-5)
    first = node.path.read_bytes()
    node.reserve("run-2", 2.0, 1e-5)
    node.record("run-2", 1.5, steps=10)
    run_ledger = tmp_path / "run-ledger.jsonl"
    rec = append_run(
        run_ledger,
        run_id="run-2",
        config={"a": 1},
        policy_sha256={"retailer": H},
        epsilon={"retailer": 1.5},
        model_path=None,
        outcome="completed",
        budget_ledgers={"retailer": (node.path, node.snapshot())},
    )
    assert rec["budget"]["retailer"]["lifetime_spent"] == 5.0
    assert rec["budget"]["retailer"]["runs"] == 2
    book = RunLedger(run_ledger)
    assert book.verify().ok
    check_budget_continuity(book, node)  # control: unchanged
    node.reserve("run-3", 1.0, 1e-5)
    check_budget_continuity(book, node)  # control: more spend is fine
    other = BudgetLedger(tmp_path / "elsewhere.json", "retailer", 10.0)
    check_budget_continuity(book, other)  # control: a ledger the run ledger never saw

    node.path.write_bytes(first)  # rewound to an older copy
    with pytest.raises(LedgerError, match=r"record 1 anchored: rewound.*ledger continuity"):
        check_budget_continuity(book, node)
    emptied = json.loads(first)
    emptied.update(runs=[], lifetime_spent=0.0)  # emptied, and consistent with itself
    node.path.write_text(json.dumps(emptied))
    assert node.spent() == 0.0
    with pytest.raises(LedgerError, match="rewound"):
        check_budget_continuity(book, node)
    node.path.unlink()  # deleted
    with pytest.raises(LedgerError, match=r"missing.*deleted \(rule: ledger continuity\)"):
        check_budget_continuity(book, node)
