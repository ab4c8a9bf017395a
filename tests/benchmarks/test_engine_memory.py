"""The engine benchmark's memory figure counts the driver and every process it started."""

from __future__ import annotations

import subprocess
import sys
import time

from confide.benchmarks.engine_overhead import PeakTreeRss

_HOLD_100_MIB = "import time; block = b'x' * (100 * 2**20); time.sleep(2.0)"


def test_a_child_processes_memory_is_in_the_peak():
    with PeakTreeRss(interval_s=0.05) as memory:
        child = subprocess.Popen([sys.executable, "-c", _HOLD_100_MIB])
        child.wait(timeout=60)
    # the child's 100 MiB block on top of the driver (Python's own ~10 MiB aside)
    assert memory.peak["total_mib"] - memory.peak["driver_mib"] >= 100
    assert memory.peak_processes >= 2


def test_control_without_a_child_the_peak_is_the_driver_alone():
    with PeakTreeRss(interval_s=0.05) as memory:
        time.sleep(0.3)
    assert memory.peak["total_mib"] - memory.peak["driver_mib"] < 5
    assert memory.peak_processes == 1
