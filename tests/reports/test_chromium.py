"""The report renders in headless Chromium: a non-blank screenshot with every section."""

from __future__ import annotations

import pytest

from confide.reports import REPORT_SECTIONS, write_report
from tests.reports.chromium import CHROMIUM, SKIP_REASON, pixel_stats, screenshot
from tests.reports.conftest import parse_page

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)


def test_report_screenshot_is_not_blank_and_has_every_section(completed_run, tmp_path):
    page = write_report(completed_run)
    assert parse_page(page.read_text(encoding="utf-8")).section_ids == list(REPORT_SECTIONS)
    png = screenshot(page, tmp_path / "report.png", tmp_path / "profile")
    size, spread, inked = pixel_stats(png)
    assert size == (1280, 4000)
    assert spread > 20 and inked > 0.05, (spread, inked)


def test_the_blank_check_would_catch_an_empty_page(tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    _, spread, inked = pixel_stats(screenshot(blank, tmp_path / "blank.png", tmp_path / "p"))
    assert spread < 5 and inked < 0.01
