"""A refused CSV must end the process cleanly: Arrow reads ahead on its own IO thread, and a
read of a Python file object still in flight when a refusal ends the process aborted it at
interpreter exit ("terminate called without an active exception", SIGABRT; CI saw it once on
the hostile corpus). The reader gives Arrow a native stream on the already-open file, so that
thread never calls into Python.

The child below makes every read from a thread other than the main one slow and reports whether
any happened: with the reader as shipped none does and the refusal exits with its one error
line; the control (no native stream) reads off the main thread.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import io, os, sys, threading, time
import confide.privacy.reader as reader

off_main = threading.Event()  # set once a read runs on a thread other than the main one

class SlowOffMain(io.RawIOBase):
    def __init__(self, raw):
        self.raw = raw
    def readable(self):
        return True
    def fileno(self):
        return self.raw.fileno()
    def seekable(self):
        return True
    def seek(self, pos, whence=0):
        return self.raw.seek(pos, whence)
    def tell(self):
        return self.raw.tell()
    def readinto(self, buffer):
        if threading.current_thread() is not threading.main_thread():
            off_main.set()
            time.sleep(0.5)  # a slow disk: the read is still in flight when the refusal ends
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
    def close(self):
        self.raw.close()
        super().close()

opened = reader.open_regular
def slow_open(path, what="data file"):
    return io.BufferedReader(SlowOffMain(opened(path, what)))
reader.open_regular = slow_open
if sys.argv[2] == "python-stream":
    reader._native_stream = lambda handle: None
try:
    with reader.open_csv(sys.argv[1]) as table:
        for _ in table.chunks(1000):
            pass
except reader.CsvFormatError:
    off_main.wait(10.0 if sys.argv[2] == "python-stream" else 0.5)
    print(f"off-main reads: {off_main.is_set()}", flush=True)
    print("error: refused", file=sys.stderr, flush=True)
    if sys.argv[2] == "python-stream":
        os._exit(2)  # whether the exit then aborts depends on timing: not what is tested
    sys.exit(2)
"""


@pytest.fixture(scope="module")
def short_row_csv(tmp_path_factory) -> Path:
    """Several Arrow blocks, the second row one field short (refused in the first block)."""
    path = tmp_path_factory.mktemp("reader-exit") / "customers.csv"
    rows = ["a,b,c", "1,2", *(f"{i},x,y" for i in range(200_000))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _run(path: Path, mode: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd (Linux)")
def test_a_refusal_exits_cleanly_while_arrow_reads_ahead(short_row_csv):
    done = _run(short_row_csv, "native")
    assert done.returncode == 2, done.stderr[-500:]
    assert done.stderr.strip().splitlines() == ["error: refused"]
    assert done.stdout.strip() == "off-main reads: False"  # Arrow never called into Python
    # control: through the Python file object Arrow reads on its own thread (the abort's cause;
    # with the old reader this test's first run aborted: rc -6, "terminate called without an
    # active exception")
    control = _run(short_row_csv, "python-stream")
    assert control.stdout.strip() == "off-main reads: True", control.stderr[-500:]
