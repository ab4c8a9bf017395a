"""Run `confide` as a subprocess on hostile input and check that it refuses cleanly.

A clean refusal: exit status not 0 (and not a crash by signal); exactly one line on stderr,
``error: ...`` naming the file, the field and the rule; no traceback anywhere; the unique marker
planted in the hostile input appears nowhere in the output; nothing in the workspace changed
(no new file, no run directory, every ledger byte-identical); and the command finished within
its time budget (CPU seconds of the child, which do not grow with other load on the machine,
plus a wall-clock ceiling that catches hangs).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CPU_LIMIT_S", "WALL_LIMIT_S", "Result", "check_refusal", "run_confide", "snapshot"]

CPU_LIMIT_S = 10.0  # user + system seconds of the confide process and its children
# `confide ...` prints expected failures as "error: ..."; `confide ledger show|verify` print
# their verdict on a broken ledger as "FAILED: ...".
ERROR_PREFIXES = ("error: ", "FAILED: ")
WALL_LIMIT_S = 90.0  # a hang (FIFO read, engine wait) runs into this; the CPU limit is the bar


@dataclass(frozen=True)
class Result:
    """What one confide run did."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    timed_out: bool


def run_confide(args: list[str], cwd: Path, timeout: float = WALL_LIMIT_S) -> Result:
    """Run ``python -m confide ARGS`` in ``cwd``; measure wall and CPU time (``wait4``)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_DEDUP_LOGS": "0", "COLUMNS": "200"}
    env.pop("CONFIDE_RUN_LEDGER_KEY_FILE", None)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "confide", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return Result(
            tuple(args),
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            wall,
            usage.ru_utime + usage.ru_stime,
            killed.is_set(),
        )


def snapshot(root: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under ``root``: mode and content (files), target (links), or a folder mark."""
    state: dict[str, tuple[int, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            state[str(path)] = (st.st_mode, os.readlink(path))
        elif stat.S_ISREG(st.st_mode):
            state[str(path)] = (st.st_mode, path.read_bytes())
        else:
            state[str(path)] = (st.st_mode, "")
    return state


def check_refusal(
    result: Result,
    *,
    expect: tuple[str, ...],
    marker: str | None,
    before: dict,
    after: dict,
) -> list[str]:
    """Every way ``result`` falls short of a clean refusal (an empty list: it is clean)."""
    problems = []
    output = result.stdout + result.stderr
    if result.timed_out:
        problems.append(f"did not finish within {WALL_LIMIT_S:g} s (killed)")
    if result.returncode == 0:
        problems.append("exit status 0")
    elif result.returncode < 0:
        problems.append(f"killed by signal {-result.returncode}")
    if "Traceback" in output or 'File "' in output:
        problems.append("a traceback was printed")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr, expected exactly one error line")
    elif not lines[0].startswith(ERROR_PREFIXES):
        problems.append("the stderr line is not an error line ('error: ' or 'FAILED: ')")
    else:
        missing = [text for text in expect if text not in lines[0]]
        if missing:
            problems.append(f"the error line does not name {missing}")
        if "rule" not in lines[0]:
            problems.append("the error line names no rule")
    if marker is not None and marker in output:
        problems.append("the raw value (marker) appears in the output")
    if before != after:
        added = sorted(set(after) - set(before))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        removed = sorted(set(before) - set(after))
        problems.append(f"files changed: added {added}, changed {changed}, removed {removed}")
    if result.cpu_s > CPU_LIMIT_S:
        problems.append(f"used {result.cpu_s:.1f} CPU s (limit {CPU_LIMIT_S:g})")
    return problems
