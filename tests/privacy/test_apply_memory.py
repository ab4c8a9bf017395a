"""Chunked ``apply_file`` keeps bounded memory through the shared reader: peak RSS does not grow
with the file. Control: reading the whole file at once (``read_csv_frame``) does grow, so the
measurement can see the difference."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

POLICY = textwrap.dedent("""\
    version: 1
    dataset: shop
    columns:
      customer_id: {tier: non_sensitive, role: id}
      note:        {tier: non_sensitive}
      mobile:      {tier: core_sensitive, transform: "mask:mobile"}
    dp: {max_epsilon_per_run: 3.0, lifetime_epsilon: 10.0, max_delta: 1.0e-5}
""")

_WRITE = """
import sys
rows = int(sys.argv[2])
with open(sys.argv[1], "w") as f:
    f.write("customer_id,note,mobile\\n")
    note = "x" * 240
    for i in range(rows):
        f.write(f"c{i},{note},138{i % 10**8:08d}\\n")
"""

_MEASURE = """
import sys
from confide.privacy import apply_file, load_policy
from confide.privacy.reader import read_csv_frame


def peak_kb():  # VmHWM: this process image's peak RSS (ru_maxrss keeps a forking parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


mode, policy, data, out = sys.argv[1:5]
base = peak_kb()
if mode == "chunked":
    apply_file(load_policy(policy), data, out, None, chunksize=5_000)
else:
    frame = read_csv_frame(data)
print((peak_kb() - base) // 1024, base // 1024)
"""


def _peak_growth_mb(tmp_path, rows: int, mode: str) -> int:
    data = tmp_path / f"d{rows}.csv"
    if not data.exists():
        subprocess.run([sys.executable, "-c", _WRITE, str(data), str(rows)], check=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _MEASURE,
            mode,
            str(tmp_path / "p.yaml"),
            str(data),
            str(tmp_path / "o.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(proc.stdout.split()[0])


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "p.yaml").write_text(POLICY)
    return tmp_path


def test_chunked_apply_memory_does_not_grow_with_the_file(workdir):
    small = _peak_growth_mb(workdir, 50_000, "chunked")  # ~13 MB file
    large = _peak_growth_mb(workdir, 400_000, "chunked")  # ~105 MB file
    assert large - small < 40, (small, large)
    # control: the same measurement on a whole-file read sees the file's size
    whole = _peak_growth_mb(workdir, 400_000, "whole")
    assert whole - small > 80, (small, whole)
