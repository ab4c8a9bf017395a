"""One real `confide simulate --quiet` run: quiet output, report written, rendered in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from confide.reports import REPORT_SECTIONS, write_report
from tests.reports.chromium import CHROMIUM, SKIP_REASON, pixel_stats, screenshot
from tests.reports.conftest import parse_page

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """A small default federation (2 rounds, fewer rows) run through the CLI in quiet mode."""
    cwd = tmp_path_factory.mktemp("e2e-report")
    cmd = [
        sys.executable,
        "-m",
        "confide",
        "simulate",
        "--quiet",
        "rounds=2",
        "federation.nodes.0.rows=2000",
        "federation.nodes.1.rows=800",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd, done


def test_quiet_mode_prints_only_the_run_directory(quiet_run):
    _, done = quiet_run
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run directory: runs/"), done.stdout


def test_simulate_writes_the_full_report(quiet_run):
    cwd, done = quiet_run
    run_dir = cwd / done.stdout.strip().removeprefix("run directory: ")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    page = parse_page(html)
    assert page.section_ids == list(REPORT_SECTIONS)
    assert page.external == []
    assert len(list((run_dir / "report").glob("*.png"))) == 8
    assert (run_dir / "logs" / "run.log").stat().st_size > 0
    # `confide report` regenerates the same sections from the same files
    assert parse_page(write_report(run_dir).read_text(encoding="utf-8")).section_ids == list(
        REPORT_SECTIONS
    )
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    size, spread, inked = pixel_stats(
        screenshot(run_dir / "report.html", cwd / "shot.png", cwd / "profile")
    )
    assert size == (1280, 4000) and spread > 20 and inked > 0.05
