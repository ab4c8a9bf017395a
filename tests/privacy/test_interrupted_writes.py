"""A killed ``privacy decrypt``/``apply``/``rotate`` leaves no plaintext temp file behind.

Real subprocesses are killed mid-write: SIGTERM unwinds through the atomic writer (its temp file
is removed); SIGKILL cannot be caught, so its leftover temp file is removed by the next run of the
same command for the same output.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from confide.privacy import Keyring, apply_file, load_policy, new_keyring_file

ROWS = 300_000
POLICY = textwrap.dedent("""\
    version: 1
    dataset: shop
    columns:
      national_id: {tier: core_sensitive, transform: "encrypt:randomized"}
      mobile:      {tier: core_sensitive, transform: "encrypt:randomized"}
      age:         {tier: general_sensitive, role: feature}
    dp: {max_epsilon_per_run: 3.0, lifetime_epsilon: 10.0, max_delta: 1.0e-5}
""")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    d = tmp_path_factory.mktemp("interrupted")
    (d / "policy.yaml").write_text(POLICY)
    new_keyring_file(d / "keys.json")
    pd.DataFrame(
        {
            "national_id": [f"11010519{i:010d}" for i in range(ROWS)],
            "mobile": [f"138{i:08d}" for i in range(ROWS)],
            "age": ["30"] * ROWS,
        }
    ).to_csv(d / "raw.csv", index=False)
    apply_file(
        load_policy(d / "policy.yaml"),
        d / "raw.csv",
        d / "applied.csv",
        Keyring.load(d / "keys.json"),
    )
    return d


def _start(d: Path, command: str, out: Path) -> subprocess.Popen:
    data = d / ("raw.csv" if command == "apply" else "applied.csv")
    args = [
        command,
        "--policy",
        str(d / "policy.yaml"),
        "--data",
        str(data),
        "--out",
        str(out),
        "--keys",
        str(d / "keys.json"),
        "--chunksize",
        "300",
    ]
    code = (
        "import sys; from confide.privacy_cli import privacy_app; "
        f"sys.argv = ['confide-privacy', *{args!r}]; privacy_app()"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*.tmp"))


def _kill_mid_write(proc: subprocess.Popen, out: Path, sig: int) -> tuple[int, str]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        temps = _temps(out)
        if temps and temps[0].stat().st_size > 64 * 1024:
            break
        if proc.poll() is not None:
            pytest.fail(f"command finished before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("no temporary output appeared within 60 s")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


@pytest.mark.parametrize("command", ["decrypt", "apply", "rotate"])
def test_sigterm_mid_write_removes_the_temp_file(workspace, command):
    out = workspace / f"{command}-term.csv"
    rc, err = _kill_mid_write(_start(workspace, command, out), out, signal.SIGTERM)
    assert _temps(out) == [] and not out.exists()
    assert rc == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and "interrupted by signal SIGTERM" in err
    assert "Traceback" not in err


def test_sigkill_leftover_is_removed_by_the_next_run(workspace):
    out = workspace / "decrypt-kill.csv"
    rc, _ = _kill_mid_write(_start(workspace, "decrypt", out), out, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    leftover = _temps(out)
    assert len(leftover) == 1  # control: an uncatchable kill does leave plaintext behind
    assert b"11010519" in leftover[0].read_bytes()[:4096]
    done = _start(workspace, "decrypt", out)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert _temps(out) == []
    assert len(pd.read_csv(out, dtype=str)) == ROWS
