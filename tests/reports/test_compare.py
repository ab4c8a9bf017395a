"""`compare_runs`: a table ordered by ε and a privacy-utility plot."""

from __future__ import annotations

from confide.reports.compare import compare_runs
from tests.reports.conftest import parse_page


def test_compare_writes_table_and_plot_ordered_by_epsilon(runs_root, tmp_path):
    runs = [runs_root / "runs" / n for n in ("dpoff", "eps3", "stopped", "eps1")]
    result = compare_runs(runs, tmp_path / "cmp")
    lines = result.table_markdown.strip().splitlines()
    assert len(lines) == 2 + 4
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]] == [
        "eps1",
        "eps3",
        "stopped (stopped)",
        "dpoff",
    ]
    assert "| off |" in lines[-1]
    assert result.plot is not None and result.plot.read_bytes()[:4] == b"\x89PNG"
    page = parse_page(result.html.read_text(encoding="utf-8"))
    assert page.section_ids == ["runs", "privacy-utility"]
    assert page.external == []
    assert result.markdown.read_text(encoding="utf-8") == result.table_markdown
