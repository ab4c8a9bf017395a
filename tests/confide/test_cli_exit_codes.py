"""The `confide` process exit status: 0 ok, 1 findings/stopped, 2 expected errors and usage."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd


def confide(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "confide", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_exit_codes(tmp_path):
    assert confide("config", "dp.epsilon=1").returncode == 0
    usage = confide("no-such-command")
    assert usage.returncode == 2
    data = tmp_path / "d.csv"
    pd.DataFrame({"phone": ["13812345678", "13987654321"] * 10}).to_csv(data, index=False)
    strict = confide("privacy", "scan", str(data), "--strict")
    assert strict.returncode == 1  # an unlisted identity column is a finding
    missing = confide(
        "score",
        "--run",
        str(tmp_path / "nope"),
        "--data",
        str(data),
        "--policy",
        str(tmp_path / "p.yaml"),
        "--out",
        str(tmp_path / "s.csv"),
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: ") and len(missing.stderr.splitlines()) == 1
    assert not (tmp_path / "s.csv").exists()
