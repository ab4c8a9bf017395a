"""``analysis.html``: the page of a DP analysis, built from a real in-process analysis of
canary-seeded synthetic nodes. Every released number is shown beside its expected error, the
header states each part's epsilon and where noise is added, canaries appear nowhere, the page
renders in headless Chromium without console errors, and ``confide report RUN`` regenerates it."""

from __future__ import annotations

import base64
import copy
import io
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from confide.analytics.inprocess import run_analysis_in_process
from confide.analytics.mechanisms import SeededLaplace
from confide.analytics.spec import load_analysis_spec
from confide.cli import app
from confide.reports.analysis import (
    ANALYSIS_SECTIONS,
    AnalysisReportError,
    build_analysis_page,
    pm,
    render_analysis_html,
)
from confide.simulations import node_profiles as npf
from confide.simulations import synth
from tests.canary import CORE_CANARIES, find_canaries, seed_canaries
from tests.reports.chromium import CHROMIUM, SKIP_REASON, pixel_stats
from tests.reports.conftest import parse_page

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "conf" / "analysis" / "customer_profile.yaml"


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> dict:
    """The built-in analysis over two small synthetic nodes whose CSVs carry canaries in every
    core-sensitive column, read back as text as a node reads them (seeded noise)."""
    import yaml

    frames = {}
    for profile in (npf.retailer(3000), npf.ecommerce(1000)):
        csv = tmp_path_factory.mktemp("node") / f"{profile.name}.csv"
        synth.generate_customers(profile, 11).frame.to_csv(csv, index=False)
        seed_canaries(csv, rows=20)
        frames[profile.name] = pd.read_csv(csv, dtype=str, keep_default_na=False)
    spec = load_analysis_spec(yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8")), "test")
    return run_analysis_in_process(spec, frames, sampler=SeededLaplace(5))


@pytest.fixture(scope="module")
def page(analysis, tmp_path_factory) -> Path:
    return render_analysis_html(analysis, tmp_path_factory.mktemp("page") / "analysis.html")


def released(analysis: dict) -> list[tuple[float, float, bool]]:
    """(value, error95, percent) of every number the page must show: each query's federated
    and per-node numbers, each segment's size / rate / value, each node's quality profile."""
    out = []
    for q in analysis["queries"].values():
        rows = [*q["federated"], *(r for rs in q["per_node"].values() for r in rs)]
        out += [(r["value"], r["error95"], False) for r in rows]
    for s in analysis.get("segments", {}).get("federated", []):
        if s["size"]["value"] > 0:
            out.append((s["size"]["value"], s["size"]["error95"], False))
            out.append((s["outcome_rate"]["value"], s["outcome_rate"]["error95"], True))
            out.append((s["average_value"]["value"], s["average_value"]["error95"], False))
    for entries in analysis.get("quality", {}).get("per_node", {}).values():
        for e in entries:
            out.append((e["rows"]["value"], e["rows"]["error95"], False))
            out += [(r["value"], r["error95"], True) for r in e["rates"].values()]
    return out


def missing_errors(html: str, analysis: dict) -> list[str]:
    """Released numbers the page does not show beside their expected error."""
    return [pm(v, e, p) for v, e, p in released(analysis) if pm(v, e, p) not in html]


def test_pm_shows_the_error_to_two_significant_digits():
    assert pm(1878514.459, 164648.4375) == "1,878,514 ± 164,648"
    assert pm(40.083385, 0.77968) == "40.08 ± 0.78"
    assert pm(0.0144136, 0.0132213, percent=True) == "1.4 ± 1.3%"
    assert pm(None, 1.0) == "n/a" and pm(3.0, None) == "3 (error n/a)"


def test_every_section_and_every_released_number_beside_its_error(analysis, page):
    html = page.read_text(encoding="utf-8")
    parsed = parse_page(html)
    assert parsed.section_ids == list(ANALYSIS_SECTIONS)
    assert parsed.external == []  # self-contained: nothing from the network
    assert len(released(analysis)) > 100
    assert missing_errors(html, analysis) == []
    assert "(error n/a)" not in html


def only(analysis: dict, *queries: str) -> dict:
    """The record's header fields and the named queries only (a page without figures for a
    single-number query: fast controls)."""
    keep = ("analysis", "epsilon", "delta", "parts", "mechanism", "noise", "noise_placement")
    out = {k: copy.deepcopy(analysis[k]) for k in (*keep, "nodes", "max_rows_per_customer")}
    out["queries"] = {q: copy.deepcopy(analysis["queries"][q]) for q in queries}
    return out


def test_control_a_number_without_its_error_is_caught(analysis):
    broken = only(analysis, "mean_age")
    broken["queries"]["mean_age"]["federated"][0]["error95"] = None
    html, pngs = build_analysis_page(broken)
    assert pngs == {}
    first = analysis["queries"]["mean_age"]["federated"][0]
    assert missing_errors(html, only(analysis, "mean_age")) == [
        pm(first["value"], first["error95"])
    ]
    assert "(error n/a)" in html
    clean = only(analysis, "mean_age")  # the same page with the error: nothing missing
    assert missing_errors(build_analysis_page(clean)[0], clean) == []


def test_header_states_epsilon_per_part_noise_placement_and_dp(analysis, page):
    header = page.read_text(encoding="utf-8").split("</header>")[0]
    assert "epsilon 3 per node" in header
    for part, eps in analysis["parts"].items():
        assert f"{part} {eps:g}" in header
    assert "noise added at each node before anything leaves it" in header
    assert "Differentially private releases" in header
    about = page.read_text(encoding="utf-8").split('id="about"')[1].split("</section>")[0]
    assert analysis["noise_placement"].split(":")[0] in about and "seeded" in about


def test_figures_are_real_pngs(page):
    srcs = parse_page(page.read_text(encoding="utf-8")).img_src
    assert len(srcs) == 6  # segments, RFM, 2 grouped queries, the histogram, quality
    for src in srcs:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            assert img.size[0] > 400 and img.size[1] > 200


def test_canaries_appear_nowhere_on_the_page(page):
    assert find_canaries([page]) == []


def test_control_the_canary_search_sees_a_leak_on_the_page(analysis, tmp_path):
    leaked = only(analysis, "mean_age")
    leaked["queries"]["mean_age"]["where"] = {"member_level": [CORE_CANARIES["national_id"]]}
    out = render_analysis_html(leaked, tmp_path / "leak.html")
    assert any(h.endswith("national_id") for h in find_canaries([out]))
    clean = render_analysis_html(only(analysis, "mean_age"), tmp_path / "clean.html")
    assert find_canaries([clean]) == []


def test_report_command_regenerates_the_page_of_an_analysis_run(analysis, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    record = {**only(analysis, "mean_age"), "run_id": "20261130-analysis", "status": "completed"}
    (run / "analysis.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report: {run / 'analysis.html'}"
    html = (run / "analysis.html").read_text(encoding="utf-8")
    assert parse_page(html).section_ids == ["about", "statistics"]
    assert "run 20261130-analysis" in html and not (run / "report.html").exists()


def test_a_stopped_analysis_shows_why_and_no_release(analysis):
    record = {**only(analysis, "mean_age"), "status": "refused", "queries": {}}
    record["message"] = "node 'ecommerce' refused: budget (rule: ANALYSIS-LIFETIME)"
    record["reasons"] = {"ecommerce": "spent 9.5 + this analysis 3 exceeds 10"}
    html, pngs = build_analysis_page(record)
    assert "node ecommerce: spent 9.5 + this analysis 3 exceeds 10" in html
    assert parse_page(html).section_ids == ["about"] and pngs == {}
    assert "did not complete (refused): node &#x27;ecommerce&#x27; refused" in html


def test_a_malformed_analysis_record_fails_in_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "analysis.json").write_text('{"parts": [1, 2]}', encoding="utf-8")
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.json"]
    with pytest.raises(AnalysisReportError, match=r"field 'parts'.*rule: analysis.json"):
        build_analysis_page({"parts": [1, 2]})


# --------------------------------------------------------------------------- headless Chromium


def chromium(page: Path, png: Path, profile: Path) -> list[str]:
    """Screenshot ``page`` (1280 x 5000, no network) and return the console messages Chromium
    logged while loading it (``--enable-logging=stderr``: lines with ``:CONSOLE``)."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        "--window-size=1280,5000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot (rc {done.returncode})"
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_page_renders_in_headless_chromium_without_console_errors(page, tmp_path):
    console = chromium(page, tmp_path / "page.png", tmp_path / "profile")
    assert console == []
    size, spread, inked = pixel_stats(tmp_path / "page.png")
    assert size == (1280, 5000)
    assert spread > 20 and inked > 0.05, (spread, inked)


@pytest.mark.skipif(CHROMIUM is None, reason=SKIP_REASON)
def test_control_a_console_error_is_caught(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><p>x</p><script>throw new Error('boom')</script></body></html>",
        encoding="utf-8",
    )
    console = chromium(bad, tmp_path / "bad.png", tmp_path / "profile")
    assert any("boom" in line for line in console), console
