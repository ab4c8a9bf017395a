"""`confide analyze` on bad input: one clear line naming the field and the rule, and nothing
written or spent (no run directory, no run ledger, node ledgers byte for byte unchanged). No
engine starts: every check here runs before Ray."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

import confide.simulations.analyze as analyze_mod
from confide.config import compose_config, to_container
from confide.core.errors import ConfideError
from confide.privacy.budget_ledger import BudgetLedger
from confide.simulations.analyze import analysis_spec, analyze, preflight_analysis

from .conftest import write_policy


@pytest.fixture
def csv_config(tmp_path, customers_csv):
    """The built-in analysis over a one-node CSV federation whose ledger holds a training run."""
    from confide.privacy.keys import new_keyring_file

    keys = tmp_path / "keys.json"
    new_keyring_file(keys)
    ledger = BudgetLedger(tmp_path / "ledger.json", "retailer", 10.0)
    ledger.reserve("train-1", 3.0, 1e-5)
    config = to_container(
        compose_config(["analysis=customer_profile", f"run.root={tmp_path / 'runs'}"])
    )
    config["federation"] = {
        "name": "csvfed",
        "nodes": [
            {
                "name": "retailer",
                "data": str(customers_csv),
                "policy": str(write_policy(tmp_path / "policy.yaml", 8.0, 10.0)),
                "keys": str(keys),
                "ledger": str(ledger.path),
            }
        ],
    }
    return config


def _engine_must_not_start(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the engine started")

    monkeypatch.setattr(analyze_mod, "start_engine", refuse)


BAD = {
    "unknown column": (
        lambda a: (
            a["columns"].update({"lifetime_value": {"min": 0, "max": 10}}),
            a["queries"][3].update({"column": "lifetime_value"}),
        ),
        r"column 'lifetime_value'.*ANALYSIS-UNKNOWN-COLUMN",
    ),
    "undeclared category": (
        lambda a: a["queries"][2].update({"where": {"member_level": ["diamond"]}}),
        r"field 'queries\.mean_age\.where\.member_level': filter values must be declared",
    ),
    "bounds inverted": (
        lambda a: a["columns"]["age"].update({"min": 90, "max": 18}),
        r"field 'columns\.age': bounds inverted",
    ),
    "group-by on an undeclared column": (
        lambda a: a["queries"][0].update({"group_by": ["city"]}),
        r"field 'queries\.spend_by_province\.group_by': column 'city' is not declared",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_in_one_line_with_nothing_written_or_spent(csv_config, monkeypatch, case):
    change, message = BAD[case]
    ledger = Path(csv_config["federation"]["nodes"][0]["ledger"])
    before = ledger.read_bytes()
    runs = csv_config["run"]["root"]
    # control: the unmodified analysis passes every check before the engine
    preflight_analysis(
        analysis_spec(csv_config), [analyze_mod.preflight_config(csv_config).nodes[0]]
    )
    bad = copy.deepcopy(csv_config)
    change(bad["analysis"])
    _engine_must_not_start(monkeypatch)
    with pytest.raises(ConfideError, match=message) as info:
        analyze(bad)
    assert "\n" not in str(info.value)
    assert not Path(runs).exists()  # no run directory, no run ledger
    assert ledger.read_bytes() == before  # nothing reserved or charged


def test_over_budget_is_refused_before_the_engine(csv_config, monkeypatch):
    BudgetLedger(csv_config["federation"]["nodes"][0]["ledger"], "retailer", 10.0).reserve(
        "train-2", 5.0, 1e-5
    )  # 8 of 10 spent: the analysis's 3 do not fit
    _engine_must_not_start(monkeypatch)
    with pytest.raises(ConfideError, match=r"rule: ANALYSIS-LIFETIME"):
        analyze(csv_config)
    assert not Path(csv_config["run"]["root"]).exists()


def test_cli_without_an_analysis_says_so_in_one_line(monkeypatch, capsys, tmp_path):
    from confide import cli

    monkeypatch.setattr(sys, "argv", ["confide", "analyze", f"run.root={tmp_path}"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: config analysis: no analysis selected; choose one from conf/analysis, e.g. "
        "`confide analyze analysis=customer_profile` (rule: analysis)"
    )
    assert not any(tmp_path.iterdir())
