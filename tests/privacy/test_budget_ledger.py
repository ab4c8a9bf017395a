"""The node's DP budget ledger: reservations, lifetime refusal, atomic and fail-closed."""

import json
import os

import pytest

from confide.core.files import atomic_write_text
from confide.privacy.budget_ledger import BudgetLedger, BudgetRefused, LedgerError


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


def test_spent_epsilon_above_reservation_is_refused_and_nothing_written(tmp_path):
    ledger = BudgetLedger(tmp_path / "l.json", "shop", 10.0)
    ledger.reserve("r", 1.0, 1e-5)
    before = (tmp_path / "l.json").read_bytes()
    with pytest.raises(LedgerError, match=r"run 'r': field 'spent_epsilon' .*rule: reservation"):
        ledger.record("r", 1.7, steps=3)
    assert (tmp_path / "l.json").read_bytes() == before
    assert ledger.spent() == 1.0
    ledger.record("r", 1.0, steps=3)  # control: up to the reservation is recorded
    assert ledger.runs()[0].spent_epsilon == 1.0


def test_record_never_lowers_the_spend(tmp_path):
    ledger = BudgetLedger(tmp_path / "l.json", "shop", 10.0)
    ledger.reserve("r", 3.0, 1e-5)
    ledger.record("r", 2.0, steps=20)
    with pytest.raises(LedgerError, match="rule: monotone spend"):
        ledger.record("r", 0.994, steps=10)  # a recalibrated accountant reporting less
    assert ledger.runs()[0].spent_epsilon == 2.0 and ledger.runs()[0].steps == 20
    ledger.record("r", 2.5, steps=30)  # control: more is recorded
    assert ledger.runs()[0].spent_epsilon == 2.5


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


def _good_ledger() -> dict:
    return {
        "version": 1,
        "node": "shop",
        "runs": [
            {
                "run_id": "r1",
                "reserved_epsilon": 3.0,
                "spent_epsilon": 2.5,
                "delta": 1e-5,
                "steps": 40,
            }
        ],
        "lifetime_epsilon": 4.0,
        "lifetime_spent": 3.0,
    }


def _set(path_keys, value):
    def change(data):
        target = data
        for key in path_keys[:-1]:
            target = target[key]
        target[path_keys[-1]] = value
        return data

    return change


MALFORMED = {
    "nan reserved": (_set(["runs", 0, "reserved_epsilon"], float("nan")), "reserved_epsilon"),
    "nan spent": (_set(["runs", 0, "spent_epsilon"], float("nan")), "spent_epsilon"),
    "infinite spent": (_set(["runs", 0, "spent_epsilon"], float("inf")), "spent_epsilon"),
    "negative reserved": (_set(["runs", 0, "reserved_epsilon"], -2.5), "reserved_epsilon"),
    "negative spent": (_set(["runs", 0, "spent_epsilon"], -7.25), "spent_epsilon"),
    "text epsilon": (_set(["runs", 0, "spent_epsilon"], "abc"), "spent_epsilon"),
    "boolean epsilon": (_set(["runs", 0, "reserved_epsilon"], True), "reserved_epsilon"),
    "missing field": (lambda d: (d["runs"][0].pop("reserved_epsilon"), d)[1], "reserved_epsilon"),
    "run entry a list": (_set(["runs", 0], [1, 2]), "runs[0]"),
    "run entry a number": (_set(["runs", 0], 17), "runs[0]"),
    "run id a number": (_set(["runs", 0, "run_id"], 12345), "run_id"),
    "steps a float": (_set(["runs", 0, "steps"], 4.5), "steps"),
    "delta of one": (_set(["runs", 0, "delta"], 1.0), "delta"),
    "runs emptied, total kept": (_set(["runs"], []), "lifetime_spent"),
    "total lowered": (_set(["lifetime_spent"], 0.5), "lifetime_spent"),
    "nan total": (_set(["lifetime_spent"], float("nan")), "lifetime_spent"),
    "duplicate run": (lambda d: (d["runs"].append(dict(d["runs"][0])), d)[1], "run_id"),
    "version a boolean": (_set(["version"], True), "version"),
    "runs an object": (_set(["runs"], {"r1": 3.0}), "runs"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ledger_fails_closed_with_one_line(tmp_path, case):
    change, field = MALFORMED[case]
    path = tmp_path / "ledger.json"
    good = _good_ledger()
    path.write_text(json.dumps(good))
    ledger = BudgetLedger(path, "shop", 4.0)
    assert ledger.spent() == 3.0  # control: the untouched ledger is accepted
    path.write_text(json.dumps(change(good)))  # NaN/Infinity are written as JSON literals
    before = path.read_bytes()
    for action in (ledger.spent, lambda: ledger.reserve("r2", 0.5, 1e-5)):
        with pytest.raises(LedgerError) as info:
            action()
        message = str(info.value)
        assert "\n" not in message
        assert str(path) in message and field in message and "rule: ledger integrity" in message
        for raw in ("abc", "-2.5", "-7.25", "12345", "4.5"):
            assert raw not in message
    assert path.read_bytes() == before  # nothing written


def test_accountant_state_must_match_the_run(tmp_path):
    path = tmp_path / "ledger.json"
    data = _good_ledger()
    data["runs"][0]["accountant"] = {
        "mechanism": "rdp",
        "noise_multiplier": 1.1,
        "sample_rate": 0.1,
        "planned_steps": 40,
        "history_sigma": [1.1],
        "history_q": [0.1],
        "history_steps": [40],
    }
    path.write_text(json.dumps(data))
    assert BudgetLedger(path, "shop", 4.0).run("r1")["accountant"]["history_steps"] == [40]
    data["runs"][0]["accountant"]["history_steps"] = [10]  # history rewound below the steps
    path.write_text(json.dumps(data))
    with pytest.raises(LedgerError, match=r"accountant.history_steps.*ledger integrity"):
        BudgetLedger(path, "shop", 4.0).run("r1")


def test_symlinked_ledger_is_written_through_to_its_target(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    target = store / "ledger.json"
    link = tmp_path / "node" / "ledger.json"
    link.parent.mkdir()
    ledger = BudgetLedger(target, "shop", 6.0)
    ledger.reserve("old", 3.0, 1e-5)
    link.symlink_to(target)
    through = BudgetLedger(link, "shop", 6.0)
    through.reserve("new", 3.0, 1e-5)
    through.record("new", 2.0, steps=5)
    assert link.is_symlink() and link.resolve() == target  # the link stays a link
    assert sorted(p.name for p in link.parent.iterdir()) == ["ledger.json"]
    assert [r.run_id for r in ledger.runs()] == ["old", "new"]  # one ledger, both runs
    assert ledger.spent() == 6.0
    with pytest.raises(BudgetRefused):  # no second ledger to spend from
        BudgetLedger(target, "shop", 6.0).reserve("third", 3.0, 1e-5)
    with pytest.raises(BudgetRefused):
        through.reserve("third", 3.0, 1e-5)


def test_fifo_ledger_is_refused_without_hanging(tmp_path):
    path = tmp_path / "ledger.json"
    os.mkfifo(path)
    with pytest.raises(LedgerError, match="regular file"):
        BudgetLedger(path, "shop", 4.0).spent()
