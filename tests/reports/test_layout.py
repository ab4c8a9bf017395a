"""Reports are offline post-processing (layer 5, ``confide.reports``), one module per section,
writing through the one atomic-write helper."""

from __future__ import annotations

import importlib
import importlib.util

from confide.core import files
from confide.reports import REPORT_SECTIONS, STOPPED_SECTIONS, compare, report


def test_reports_are_not_part_of_the_server():
    assert importlib.util.find_spec("confide.server.report") is None
    assert importlib.util.find_spec("confide.reports") is not None


def test_every_report_section_has_its_own_module():
    for section in sorted({*REPORT_SECTIONS, *STOPPED_SECTIONS}):
        module = importlib.import_module(f"confide.reports.sections.{section.replace('-', '_')}")
        assert callable(getattr(module, section.replace("-", "_"))), section


def test_reports_write_with_the_one_atomic_write_helper():
    assert report.atomic_write_bytes is files.atomic_write_bytes
    assert report.atomic_write_text is files.atomic_write_text
    assert compare.atomic_write_bytes is files.atomic_write_bytes
    assert "atomic_write_bytes" not in report.__all__
