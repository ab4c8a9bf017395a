"""Run reports: ``report.html`` per run (plots from score histograms, privacy, data) and
``compare.html`` across runs (privacy-utility plot)."""

from .compare import compare_runs
from .report import REPORT_FILE, REPORT_SECTIONS, STOPPED_SECTIONS, build_report, write_report
from .rundata import ReportError, RunData, load_run

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
