"""CLI commands `confide report RUN_DIR` and `confide compare RUN_DIR... --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["compare_command", "register_report_commands", "report_command"]


def report_command(
    run_dir: Path = typer.Argument(
        ..., help="A run directory written by `confide simulate` or `confide analyze`."
    ),
) -> None:
    """Regenerate a run's report.html and its plot PNGs (under RUN_DIR/report/); for an
    analysis run directory (analysis.json), its analysis.html."""
    from confide.reports.analysis import is_analysis_run, write_analysis_report

    if is_analysis_run(run_dir):
        typer.echo(f"report: {write_analysis_report(run_dir)}")
        return
    from confide.reports.report import write_report

    typer.echo(f"report: {write_report(run_dir)}")


def compare_command(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    out: Path = typer.Option(Path("compare"), "--out", help="Folder for compare.html and PNG."),
) -> None:
    """Put runs side by side (e.g. an ε sweep): table and privacy-utility plot."""
    from confide.reports.compare import compare_runs

    result = compare_runs(run_dirs, out)
    typer.echo(result.table_markdown)
    typer.echo(f"comparison: {result.html}")


def register_report_commands(app: typer.Typer) -> None:
    """Add `report` and `compare` to the `confide` app."""
    app.command("report")(report_command)
    app.command("compare")(compare_command)
