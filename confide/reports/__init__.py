"""Run reports: ``report.html`` per run (plots from score histograms, privacy, data) and
``compare.html`` across runs (privacy-utility plot). Offline post-processing of a run directory.

The names below load on first use, so importing one light module of this package (such as
:mod:`~confide.reports.html_page`, which ``confide audit`` uses) does not load matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "REPORT_FILE",
    "REPORT_SECTIONS",
    "STOPPED_SECTIONS",
    "ReportError",
    "RunData",
    "build_report",
    "compare_runs",
    "load_run",
    "write_report",
]

_HOME = {
    "REPORT_FILE": "report",
    "REPORT_SECTIONS": "report",
    "STOPPED_SECTIONS": "report",
    "build_report": "report",
    "write_report": "report",
    "compare_runs": "compare",
    "ReportError": "rundata",
    "RunData": "rundata",
    "load_run": "rundata",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value
