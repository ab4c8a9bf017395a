"""Start-up cost of the command line: ``confide --help`` against ``python -c pass``.

Both are run in fresh interpreters, interleaved, ``--repeat`` times each (default 5); the
result is the ratio of the medians of the wall times, measured in one run, written as JSON to
``benchmarks/results/cli_startup.json`` (or ``--out``)::

    python -m confide.benchmarks.cli_startup
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from confide.core.files import atomic_write_text

__all__ = ["main", "measure"]

RESULTS = Path(__file__).resolve().parent / "results" / "cli_startup.json"
_HELP = [sys.executable, "-c", "import sys; from confide.cli import main; main()", "--help"]
_PASS = [sys.executable, "-c", "pass"]


def _wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(repeat: int = 5) -> dict:
    """Median wall seconds of ``confide --help`` and of ``python -c pass``, and their ratio."""
    _wall(_HELP)  # warm the file cache once; not counted
    helps, passes = [], []
    for _ in range(repeat):
        passes.append(_wall(_PASS))
        helps.append(_wall(_HELP))
    help_s, pass_s = statistics.median(helps), statistics.median(passes)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "repeat": repeat,
        "confide_help_s": helps,
        "python_pass_s": passes,
        "confide_help_median_s": help_s,
        "python_pass_median_s": pass_s,
        "ratio": help_s / pass_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON result; prints one summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(max(1, args.repeat))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2))
    print(
        f"confide --help {result['confide_help_median_s']:.3f} s, python -c pass "
        f"{result['python_pass_median_s']:.3f} s (medians of {result['repeat']}): ratio "
        f"{result['ratio']:.1f}x -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
