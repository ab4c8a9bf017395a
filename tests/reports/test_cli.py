"""`confide report` and `confide compare` through the real CLI app."""

from __future__ import annotations

from typer.testing import CliRunner

from confide.cli import app


def test_report_and_compare_commands(runs_root, tmp_path):
    runner = CliRunner()
    run_dir = runs_root / "runs" / "eps1"
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.html").is_file() and "report:" in result.output
    result = runner.invoke(
        app, ["compare", str(run_dir), str(runs_root / "runs" / "eps3"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "compare.html").is_file() and (tmp_path / "privacy_utility.png").is_file()
    assert "global ROC-AUC" in result.output


def test_report_on_a_non_run_directory_fails_cleanly(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code != 0
    assert "config.yaml: missing" in str(result.exception)
