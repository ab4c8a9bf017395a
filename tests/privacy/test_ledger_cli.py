"""``confide ledger show|verify|repair|migrate-key`` on hostile run ledgers: one line, no
traceback, non-zero exit, nothing written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from confide.privacy.run_ledger import RunLedger, canonical_json


def _add(book: RunLedger, i: int) -> None:
    book.append(
        run_id=f"run-{i}",
        config_sha256=hashlib.sha256(str(i).encode()).hexdigest(),
        policy_sha256={"retailer": "a" * 64},
        epsilon={"retailer": 1.25},
        model_sha256=None,
        outcome="completed",
    )


def _rehash(rec: dict) -> dict:
    body = {k: v for k, v in rec.items() if k not in ("hash", "mac", "mac_key")}
    rec["hash"] = hashlib.sha256(canonical_json(body)).hexdigest()
    return rec


def _ledger(tmp_path, change=None) -> RunLedger:
    book = RunLedger(tmp_path / "run-ledger.jsonl")
    for i in (1, 2):
        _add(book, i)
    if change is not None:
        rows = book.path.read_text(encoding="utf-8").splitlines()
        rec = json.loads(rows[-1])
        changed = change(rec)
        if isinstance(changed, dict):
            changed = _rehash(changed)
            head = json.loads(book.head_path.read_text())
            head["head"] = changed["hash"]  # a consistent rewrite of chain and head
            book.head_path.write_text(json.dumps(head))
        rows[-1] = json.dumps(changed)
        book.path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return book


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run ``confide ledger ...`` in-process through the console entry point: an exception
    that entry point does not turn into one line escapes here, as a traceback would."""
    from confide.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", ["confide", "ledger", *args])
        with pytest.raises(SystemExit) as done:
            main()
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, done.value.code, out.out, out.err)

    return run


HOSTILE = {
    "non-numeric epsilon": lambda r: {**r, "epsilon": {"retailer": "abc"}},
    "epsilon a list": lambda r: {**r, "epsilon": ["abc"]},
    "missing field": lambda r: {k: v for k, v in r.items() if k != "seq"},
    "sequence a string": lambda r: {**r, "seq": "two"},
    "record a list": lambda r: ["abc"],
    "record a number": lambda r: 17,
    "nodes an object": lambda r: {**r, "nodes": {"retailer": 1}},
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("command", ["show", "verify"])
def test_hostile_records_give_one_line_and_no_traceback(tmp_path, cli, case, command):
    book = _ledger(tmp_path, HOSTILE[case])
    before = (book.path.read_bytes(), book.head_path.read_bytes())
    done = cli(command, "--ledger", str(book.path))
    assert done.returncode not in (0,), done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "record 2" in errors[0] and str(book.path) in errors[0]
    assert "abc" not in done.stderr
    assert (book.path.read_bytes(), book.head_path.read_bytes()) == before


def test_show_of_an_intact_ledger_is_a_control(tmp_path, cli):
    book = _ledger(tmp_path)
    done = cli("show", "--ledger", str(book.path))
    assert done.returncode == 0 and "retailer 1.250" in done.stdout and "verify: ok" in done.stdout


def test_repair_command_reports_what_it_removed(tmp_path, cli):
    book = _ledger(tmp_path)
    head = book.head_path.read_bytes()
    _add(book, 3)
    book.head_path.write_bytes(head)  # killed between the line and the head update
    done = cli("verify", "--ledger", str(book.path))
    assert done.returncode == 1 and "confide ledger repair" in done.stderr
    done = cli("repair", "--ledger", str(book.path))
    assert done.returncode == 0, done.stderr
    assert "removed the last record not in the head" in done.stdout
    assert "backup" in done.stdout and ".torn-" in done.stdout
    assert cli("verify", "--ledger", str(book.path)).returncode == 0
    again = cli("repair", "--ledger", str(book.path))
    assert again.returncode != 0 and "nothing to repair" in again.stderr
    assert "Traceback" not in again.stderr


def test_migrate_key_command_runs_once(tmp_path, cli):
    from tests.privacy.test_run_ledger import _legacy_ledger

    path, _ = _legacy_ledger(tmp_path)
    key = str(tmp_path / "k.json")
    done = cli("verify", "--ledger", str(path), "--key-file", key)
    assert done.returncode == 0 and "legacy" in done.stdout
    done = cli("migrate-key", "--ledger", str(path), "--key-file", key)
    assert done.returncode == 0 and "2 record(s) re-MAC'd" in done.stdout
    done = cli("migrate-key", "--ledger", str(path), "--key-file", key)
    assert done.returncode == 0 and "nothing to migrate" in done.stdout
    done = cli("verify", "--ledger", str(path), "--key-file", key)
    assert done.returncode == 0 and "legacy" not in done.stdout


def test_verify_checks_budget_ledgers_against_their_anchor(tmp_path, cli):
    from confide.privacy.budget_ledger import BudgetLedger
    from confide.privacy.run_ledger import append_run

    node = BudgetLedger(tmp_path / "shop.json", "shop", 10.0)
    node.reserve("r1", 2.0, 1e-5)
    append_run(
        tmp_path / "rl.jsonl",
        run_id="r1",
        config={},
        policy_sha256={"shop": "a" * 64},
        epsilon={"shop": 2.0},
        model_path=None,
        outcome="completed",
        budget_ledgers={"shop": (node.path, node.snapshot())},
    )
    args = ("verify", "--ledger", str(tmp_path / "rl.jsonl"), "--budget", f"shop={node.path}")
    done = cli(*args)
    assert done.returncode == 0 and "node 'shop' is not behind" in done.stdout
    node.path.unlink()
    done = cli(*args)
    assert done.returncode == 2 and "deleted (rule: ledger continuity)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
