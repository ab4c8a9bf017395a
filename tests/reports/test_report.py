"""report.html of a run directory: sections, embedded plots, privacy facts, stopped runs."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from confide.reports import (
    REPORT_SECTIONS,
    STOPPED_SECTIONS,
    ReportError,
    build_report,
    load_run,
    write_report,
)
from confide.reports.compliance import privacy_facts
from tests.reports.conftest import parse_page
from tests.reports.fake_run import make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(completed_run):
    out = write_report(completed_run)
    return out, out.read_text(encoding="utf-8")


def test_report_has_every_section_and_only_embedded_images(written, completed_run):
    out, html = written
    assert out == completed_run / "report.html"
    page = parse_page(html)
    assert page.section_ids == list(REPORT_SECTIONS)
    assert page.external == []  # self-contained: nothing loaded from anywhere
    assert len(page.img_src) == 8
    for src in page.img_src:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    for name in (
        "roc",
        "pr",
        "calibration",
        "ks",
        "gains_lift",
        "rounds",
        "epsilon",
        "auc_per_node",
    ):
        png = completed_run / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC, name
    leftovers = [p.name for p in (completed_run / "report").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_report_states_the_numbers_a_reader_needs(written, completed_run):
    _, html = written
    metrics = json.loads((completed_run / "metrics.json").read_text())
    text = " ".join(parse_page(html).text)
    assert f"ROC-AUC {metrics['global']['roc_auc']:.3f}" in text
    assert f"{metrics['baselines']['centralised']['pooled']['roc_auc']:.3f}" in text
    assert "retailer" in text and "ecommerce" in text
    assert "local simulation engine" in text and "no network transport" in text
    assert "core_sensitive" in text and "pseudonymize" in text and "feature (under DP)" in text
    assert "No findings" in text
    assert "Decile table" in text


def test_privacy_facts_load_policies_by_package_and_relative_path(completed_run):
    facts = privacy_facts(load_run(completed_run))
    assert [n.node for n in facts.nodes] == ["retailer", "ecommerce"]
    assert all(n.policy is not None for n in facts.nodes), [n.policy_error for n in facts.nodes]
    assert facts.secure_aggregation == "off" and facts.problems == []
    retailer = facts.nodes[0]
    assert retailer.budget_per_run == 3.0 and retailer.lifetime_epsilon == 10.0
    assert retailer.lifetime_spent_before == pytest.approx(1.5)  # the earlier run only
    assert retailer.lifetime_spent_after == pytest.approx(4.5)
    assert {f.rule_id for f in retailer.findings} == {"FIELD-USE"}


def test_node_setting_tightens_the_budget_and_secagg_is_read(tmp_path):
    run_dir = make_run(tmp_path, "tight", node_max_epsilon=2.0)
    cfg = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(cfg + "secure:\n  secagg:\n    enabled: true\n")
    facts = privacy_facts(load_run(run_dir))
    assert [n.budget_per_run for n in facts.nodes] == [3.0, 2.0]
    assert facts.secure_aggregation.startswith("SecAgg+ on")


def test_dp_off_run_is_flagged_with_the_rule_findings(runs_root):
    html, _ = build_report(load_run(runs_root / "runs" / "dpoff"))
    text = " ".join(parse_page(html).text)
    assert "WITHOUT differential privacy" in text
    assert "GS-NO-DP" in text and "DP-REQUIRED" in text  # the shipped policy requires DP
    assert "feature (NO DP)" in text


def test_missing_policy_is_reported_not_fatal(tmp_path):
    run_dir = make_run(tmp_path, "nopolicy")
    (tmp_path / "policies" / "partner.yaml").unlink()
    html, _ = build_report(load_run(run_dir))
    assert "policy file not found: policies/partner.yaml" in html


def test_stopped_run_report_shows_the_stop_reasons(runs_root):
    run_dir = runs_root / "runs" / "stopped"
    out = write_report(run_dir)
    html = out.read_text(encoding="utf-8")
    page = parse_page(html)
    assert set(STOPPED_SECTIONS) <= set(page.section_ids)
    assert "discrimination" not in page.section_ids
    text = " ".join(page.text)
    assert "did NOT complete" in text
    assert "DP-EPS-RUN" in text and "ecommerce" in text


def test_not_a_run_directory_is_a_clear_error(tmp_path, completed_run):
    with pytest.raises(ReportError, match="not a directory"):
        load_run(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(completed_run, broken)
    (broken / "outcome.json").unlink()
    with pytest.raises(ReportError, match=r"outcome\.json: missing"):
        write_report(broken)
    (broken / "outcome.json").write_text("{not json")
    with pytest.raises(ReportError, match="unreadable JSON"):
        write_report(broken)


def test_run_without_baselines_still_gets_a_full_report(tmp_path):
    run_dir = make_run(tmp_path, "nobase", rounds=1)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("baselines")
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    curves = json.loads((run_dir / "curves.json").read_text())
    curves["pooled_test"] = {"global": curves["pooled_test"]["global"]}
    (run_dir / "curves.json").write_text(json.dumps(curves))
    html, pngs = build_report(load_run(run_dir))
    assert parse_page(html).section_ids == list(REPORT_SECTIONS)
    text = " ".join(parse_page(html).text)
    assert "no baselines were run" in text and "centralised, no DP" not in text
    assert len(pngs) == 8


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [("tls", "Flower deployment engine, TLS"), ("insecure", "INSECURE (no TLS)")],
)
def test_deployment_transport_is_read_from_the_deployed_job(tmp_path, deployment, expected):
    run_dir = make_run(tmp_path, "deployed")
    cfg = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(cfg + f"deployment:\n  transport: {deployment}\n")
    assert expected in privacy_facts(load_run(run_dir)).transport
