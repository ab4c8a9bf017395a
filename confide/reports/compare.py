"""`confide compare RUN_DIR...`: runs side by side (e.g. an ε sweep) and a privacy-utility plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confide.core.files import atomic_write_bytes, atomic_write_text

from . import plots
from .html_page import Section, figure, page, paragraph, table
from .rundata import ReportError, RunData, load_run

__all__ = ["COMPARE_FILE", "COMPARE_PLOT", "CompareResult", "compare_rows", "compare_runs"]

COMPARE_FILE = "compare.html"
COMPARE_MARKDOWN = "compare.md"
COMPARE_PLOT = "privacy_utility.png"

_HEADERS = (
    "run",
    "setup",
    "ε target",
    "largest ε spent",
    "global ROC-AUC",
    "PR-AUC",
    "log-loss",
    "centralised, no DP",
    "centralised, DP",
    "local only",
)


@dataclass(frozen=True)
class CompareResult:
    """What ``compare_runs`` wrote."""

    html: Path
    markdown: Path
    plot: Path | None
    table_markdown: str


def _f(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def _point(run: RunData) -> dict[str, Any]:
    m = run.metrics
    base = m.get("baselines", {}) or {}
    dp = run.dp
    spent = [n.get("epsilon") for n in m.get("nodes", {}).values() if n.get("epsilon") is not None]

    def auc(name: str) -> float | None:
        return ((base.get(name) or {}).get("pooled") or {}).get("roc_auc")

    target = dp.get("epsilon_target", dp.get("epsilon"))
    return {
        "label": run.run_dir.name,
        "completed": run.completed,
        "epsilon": (float(target) if target is not None else max(spent, default=None))
        if dp.get("enabled")
        else None,
        "largest_spent": max(spent) if spent and dp.get("enabled") else None,
        "global": m.get("global", {}).get("roc_auc"),
        "pr_auc": m.get("global", {}).get("pr_auc"),
        "log_loss": m.get("global", {}).get("log_loss"),
        "centralised": auc("centralised"),
        "centralised_dp": auc("centralised_dp"),
        "local_only": {n.split(":", 1)[1]: auc(n) for n in base if n.startswith("local_only:")},
    }


def compare_rows(runs: Sequence[RunData]) -> list[tuple[str, ...]]:
    """One table row per run, ordered by ε (DP-off runs last)."""
    rows = []
    pairs = [(run, _point(run)) for run in runs]
    pairs.sort(key=lambda rp: (rp[1]["epsilon"] is None, rp[1]["epsilon"] or 0.0))
    for run, p in pairs:
        local = "; ".join(f"{n} {_f(v)}" for n, v in p["local_only"].items()) or "n/a"
        status = run.outcome.get("status", "?")
        cfg = run.config
        rows.append(
            (
                p["label"] + ("" if status == "completed" else f" ({status})"),
                f"{cfg.get('model', {}).get('name', '?')} · "
                f"{cfg.get('strategy', {}).get('name', '?')} · {len(run.node_names)} nodes",
                "off" if p["epsilon"] is None else f"{p['epsilon']:g}",
                _f(p["largest_spent"]),
                _f(p["global"]),
                _f(p["pr_auc"]),
                _f(p["log_loss"]),
                _f(p["centralised"]),
                _f(p["centralised_dp"]),
                local,
            )
        )
    return rows


def _markdown(rows: Sequence[Sequence[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(_HEADERS), line(["---"] * len(_HEADERS)), *map(line, rows)]) + "\n"


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path) -> CompareResult:
    """Write ``compare.html``, ``compare.md`` and the privacy-utility PNG into ``out_dir``."""
    if not run_dirs:
        raise ReportError("compare: give at least one run directory (rule: compare)")
    runs = [load_run(d) for d in run_dirs]
    out_dir = Path(out_dir)
    rows = compare_rows(runs)
    markdown = _markdown(rows)
    points = [p for p in map(_point, runs) if p["completed"] and p["global"] is not None]
    sections = [
        Section(
            "runs",
            "Runs side by side",
            paragraph(
                "ROC-AUC, PR-AUC and log-loss on each run's pooled held-out test set; the "
                "centralised and local-only columns are that run's own baselines.",
                "lead",
            )
            + table(_HEADERS, rows, text_columns=(0, 1, 9)),
        )
    ]
    plot_path = None
    if points:
        png = plots.privacy_utility_png(points)
        plot_path = out_dir / COMPARE_PLOT
        atomic_write_bytes(plot_path, png)
        sections.append(
            Section(
                "privacy-utility",
                "Privacy-utility trade-off",
                '<div class="figs">'
                + figure(
                    png,
                    "ROC-AUC against epsilon",
                    "Federated ROC-AUC against ε per node per run. Black dashed: centralised "
                    "without DP (the ceiling federation tries to reach); dotted: each node "
                    "training alone (what federation should beat).",
                )
                + "</div>",
            )
        )
    else:
        sections.append(
            Section(
                "privacy-utility",
                "Privacy-utility trade-off",
                paragraph("No completed run to plot.", "bad"),
            )
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    html = page(
        "Confide run comparison",
        f"{len(runs)} runs",
        sections,
        f"Generated by Confide on {stamp} with `confide compare`.",
    )
    html_path = out_dir / COMPARE_FILE
    md_path = out_dir / COMPARE_MARKDOWN
    atomic_write_text(html_path, html)
    atomic_write_text(md_path, markdown)
    return CompareResult(html_path, md_path, plot_path, markdown)
