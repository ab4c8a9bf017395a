"""One real `confide simulate task=time_to_churn` run on the Flower simulation engine: the
survival report's sections, rendered in headless Chromium, and `confide score`'s survival
output per customer (churn probability within each horizon, median retention)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from confide.reports.report import SURVIVAL_SECTIONS
from tests.reports.chromium import CHROMIUM, SKIP_REASON, pixel_stats, screenshot
from tests.reports.conftest import parse_page

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ~45 s: Ray start, 2 rounds, baselines
POLICY = Path(__file__).parents[2] / "simulations" / "policies" / "synthetic_customers.yaml"
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


@pytest.fixture(scope="module")
def survival_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("e2e-survival")
    cmd = [
        sys.executable, "-m", "confide", "simulate", "--quiet", "task=time_to_churn",
        "rounds=2", "federation.nodes.0.rows=3000", "federation.nodes.1.rows=1000",
    ]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return cwd, cwd / done.stdout.strip().removeprefix("run directory: ")


def test_survival_report_sections_render_in_chromium(survival_run):
    cwd, run_dir = survival_run
    page = parse_page((run_dir / "report.html").read_text(encoding="utf-8"))
    assert page.section_ids[:4] == list(SURVIVAL_SECTIONS)
    assert page.external == []
    assert (run_dir / "report" / "survival_curves.png").stat().st_size > 0
    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    size, spread, inked = pixel_stats(
        screenshot(run_dir / "report.html", cwd / "shot.png", cwd / "profile")
    )
    assert size == (1280, 4000) and spread > 20 and inked > 0.05


def test_score_writes_horizon_probabilities_and_median_retention(survival_run):
    cwd, run_dir = survival_run
    node = run_dir / "nodes" / "ecommerce"
    out = cwd / "scores.csv"
    cmd = [
        sys.executable, "-m", "confide", "score", "--run", str(run_dir),
        "--data", str(node / "customers.csv"), "--policy", str(POLICY),
        "--keys", str(node / "keys.json"), "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 1000
    assert list(rows[0])[1:] == [
        "churn_within_3", "churn_within_6", "churn_within_12", "median_retention",
    ]  # fmt: skip
    for row in rows:
        p3, p6, p12 = (float(row[f"churn_within_{h}"]) for h in (3, 6, 12))
        assert 0.0 <= p3 <= p6 <= p12 <= 1.0  # survival never rises
        median = row["median_retention"]
        assert median == "beyond 12" if p12 < 0.5 else float(median) <= 12
    assert not any(k in rows[0] for k in ("retention_months", "churn_event"))
