"""Bad input stops a run with one line naming file, column and rule; nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from confide.config import compose_config, to_container
from confide.modeling.errors import ConfideError
from confide.privacy.errors import PrivacyError
from confide.simulations.simulate import simulate
from tests.byo_data import write_user_federation


@pytest.fixture
def user_conf(tmp_path):
    return write_user_federation(tmp_path / "org", {"shop_a": 600, "shop_b": 300})


def _config(conf_dir: Path, runs: Path) -> dict:
    return to_container(
        compose_config(
            ["federation=mine", f"run.root={runs}", "rounds=1", "baselines.enabled=false"],
            [conf_dir],
        )
    )


def _break(csv: Path, how: str) -> None:
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    if how == "missing column":
        frame = frame.drop(columns=["recency_days"])
    elif how == "extra column":
        frame["loyalty_segment"] = "x"
    elif how == "non-numeric":
        frame.loc[5, "age"] = "forty"
    elif how == "third label":
        frame.loc[7, "churned"] = "2"
    elif how == "empty file":
        csv.write_text("", encoding="utf-8")
        return
    frame.to_csv(csv, index=False)


CASES = {
    "missing column": ("recency_days", "schema"),
    "extra column": ("loyalty_segment", "unknown_columns"),
    "non-numeric": ("age", "numeric feature"),
    "third label": ("churned", "binary label"),
    "empty file": (None, "non-empty data"),
}


@pytest.mark.parametrize("how", list(CASES))
def test_bad_input_names_file_column_and_rule_and_writes_nothing(user_conf, tmp_path, how):
    csv = user_conf.parent / "shop_b" / "customers.csv"
    _break(csv, how)
    runs = tmp_path / "runs"
    with pytest.raises((ConfideError, PrivacyError)) as err:
        simulate(_config(user_conf, runs))
    message = str(err.value)
    column, rule = CASES[how]
    assert "\n" not in message
    assert str(csv) in message and rule in message
    if column:
        assert f"'{column}'" in message
    assert "forty" not in message
    assert not runs.exists() or not any(runs.rglob("*"))
    assert not (user_conf.parent / "shop_a" / "ledger.json").exists()
    assert not (user_conf.parent / "shop_b" / "ledger.json").exists()


def test_nonexistent_path_via_cli_prints_one_line(user_conf, tmp_path):
    missing = user_conf.parent / "shop_b" / "customers.csv"
    missing.unlink()
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "confide",
            "simulate",
            "--config-dir",
            str(user_conf),
            "federation=mine",
            f"run.root={runs}",
            "rounds=1",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"error: {missing}: file does not exist (rule: data path)"]
    assert not runs.exists()
