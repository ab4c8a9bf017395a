"""The audit is facts, review and rendering, and reuses the runtime's node parser, CSV reader
and the reports' HTML page builder instead of keeping copies of its own."""

from __future__ import annotations

import importlib
import subprocess
import sys

from confide import job as job_module
from confide.audit import audit_config
from confide.reports import html_page
from tests.confide.test_audit import mini


def test_the_audit_is_split_into_facts_review_and_rendering():
    names = {
        m: importlib.import_module(f"confide.audit.{m}") for m in ("facts", "review", "render")
    }
    assert hasattr(names["facts"], "NodeView") and hasattr(names["review"], "audit_config")
    assert hasattr(names["render"], "render_markdown")
    assert not hasattr(names["facts"], "_Node")  # nodes are the runtime's NodeSpec


def test_a_csv_the_runtime_reader_refuses_is_unreadable_for_the_audit(tmp_path):
    cfg = mini(tmp_path)
    ok = audit_config(cfg)
    assert ok.nodes[0].train_rows == 40 and "DATA-MISSING" not in ok.node_errors("shop")
    text = (tmp_path / "shop.csv").read_text(encoding="utf-8").splitlines()
    text[0] = text[0].replace("province", "age")  # a duplicated column: the reader refuses it
    (tmp_path / "shop.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    bad = audit_config(cfg)
    assert bad.nodes[0].train_rows is None
    assert "DATA-MISSING" in bad.node_errors("shop")


def test_an_invalid_job_still_parses_its_nodes_with_the_runtime_parser(tmp_path, monkeypatch):
    seen = []
    real = job_module.parse_node

    def spy(raw, index):
        seen.append(index)
        return real(raw, index)

    monkeypatch.setattr(job_module, "parse_node", spy)
    cfg = mini(tmp_path)
    cfg["rounds"] = 0  # the job is invalid; the nodes are not
    report = audit_config(cfg)
    assert seen == [0]
    assert "CONFIG-INVALID" in {f.rule_id for f in report.all_findings}
    node = report.nodes[0]
    assert (node.name, node.train_rows) == ("shop", 40)


def test_the_html_review_is_built_by_the_reports_page_builder(tmp_path):
    from confide.audit import render

    cfg = mini(tmp_path)
    cfg["deployment"] = {"transport": "insecure"}
    text = render(audit_config(cfg), "html")
    assert html_page._CSS in text  # the one page builder's stylesheet
    assert '<section id="findings">' in text and '<section id="node-shop">' in text
    assert '<td class="text bad">ERROR</td>' in text


def _loads_matplotlib(module: str) -> bool:
    code = f"import sys, {module}; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def test_the_audit_uses_the_page_builder_without_loading_the_plots():
    assert _loads_matplotlib("confide.reports.report")  # control: the report does plot
    assert not _loads_matplotlib("confide.audit")
