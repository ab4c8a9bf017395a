"""``confide score --out`` may not be any input of the command (data, policy, key file, model)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from confide.core.errors import ConfideError
from confide.privacy import new_keyring_file

from ..privacy.conftest import POLICY_YAML


@pytest.fixture
def inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(b"not a model")
    (tmp_path / "data.csv").write_text("customer_id,age\nc1,30\n")
    (tmp_path / "policy.yaml").write_text(POLICY_YAML)
    new_keyring_file(tmp_path / "keys.json")
    return {
        "run": run,
        "data": tmp_path / "data.csv",
        "policy": tmp_path / "policy.yaml",
        "keys": tmp_path / "keys.json",
        "model": run / "model.pt",
    }


def _score(inputs, out) -> subprocess.CompletedProcess:
    args = ["score", "--run", str(inputs["run"]), "--data", str(inputs["data"])]
    args += ["--policy", str(inputs["policy"]), "--keys", str(inputs["keys"]), "--out", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "confide", *args], capture_output=True, text=True, timeout=120
    )


def _score_in_process(inputs, out):
    from typer.testing import CliRunner

    from confide.cli import app

    args = ["score", "--run", str(inputs["run"]), "--data", str(inputs["data"])]
    args += ["--policy", str(inputs["policy"]), "--keys", str(inputs["keys"]), "--out", str(out)]
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("role", ["data", "keys", "policy", "model", "hard link to data"])
def test_score_out_over_an_input_is_refused_before_anything_is_read(inputs, role, tmp_path):
    before = {k: v.read_bytes() for k, v in inputs.items() if k != "run"}
    out = inputs.get(role)
    if role == "hard link to data":
        out = tmp_path / "scores.csv"
        os.link(inputs["data"], out)
    result = _score_in_process(inputs, out)
    assert isinstance(result.exception, ConfideError), result.exception
    assert "rule: output is not an input" in str(result.exception)
    assert {k: v.read_bytes() for k, v in inputs.items() if k != "run"} == before


def test_score_out_over_the_key_file_is_one_line_exit_2(inputs):
    before = inputs["keys"].read_bytes()
    proc = _score(inputs, inputs["keys"])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "key file" in proc.stderr and "rule: output is not an input" in proc.stderr
    assert inputs["keys"].read_bytes() == before


def test_control_fresh_out_path_gets_past_the_guard(inputs, tmp_path):
    result = _score_in_process(inputs, tmp_path / "scores.csv")
    assert isinstance(result.exception, ConfideError)  # the fake model is refused next
    assert "rule: output is not an input" not in str(result.exception)
    assert not (tmp_path / "scores.csv").exists()
