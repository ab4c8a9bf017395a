"""Researcher commands: ``confide sweep`` and ``confide attack membership``.

Both take Hydra overrides and ``--config-dir`` like ``confide simulate``; heavy imports happen
inside the commands so the CLI starts fast.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["attack_app", "register_research_commands", "sweep"]

_OVERRIDES = typer.Argument(
    None, help="Hydra overrides; comma lists sweep, e.g. dp.epsilon=0.5,1,3,8,off model=logreg,mlp"
)
_CONFIG_DIR = typer.Option(
    None, "--config-dir", help="A folder of your own configs, added to Hydra's search path."
)

attack_app = typer.Typer(
    help="Empirical privacy audits (membership inference).", no_args_is_help=True
)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 130
    return console


def sweep(
    overrides: list[str] | None = _OVERRIDES,
    config_dir: list[Path] | None = _CONFIG_DIR,
    out: Path | None = typer.Option(
        None, "--out", help="Sweep directory (default: <run.root>/sweeps/<UTC time>-sweep)."
    ),
) -> None:
    """Run many simulations (Hydra multirun semantics): one table, results.json and a plot.

    Writes summary.csv, summary.md, results.json and privacy_utility.png.

    On the dp.epsilon axis, `off` is the non-private point (dp=off); it needs a federation whose
    policy permits it, e.g. federation=default_research.
    """
    from confide.simulations.sweep import plan_sweep, run_sweep

    console = _console()
    _, points = plan_sweep(overrides or [], config_dir or [])
    console.print(f"Sweep: {len(points)} point(s): " + "; ".join(p.label for p in points))

    def report(record: dict[str, Any]) -> None:
        auc = (record.get("global") or {}).get("roc_auc")
        figure = f"federated AUC {auc:.4f}" if auc is not None else record.get("message", "")
        console.print(
            f"  [{record['index'] + 1}] {record['label']}: {record['status']}  {figure}  "
            f"({record['wall_s']:.0f} s)"
        )

    result = run_sweep(overrides or [], config_dir or [], out, on_point=report)
    console.print((result.sweep_dir / "summary.md").read_text(encoding="utf-8"))
    console.print(f"Sweep directory: [bold]{result.sweep_dir}[/bold]  (wall {result.wall_s:.0f} s)")
    if not any(p["status"] == "completed" for p in result.points):
        raise typer.Exit(1)


def _print_audit(console: Console, reports: list[dict[str, Any]]) -> None:
    table = Table(title="Membership inference against the global model")
    for column in (
        "setting measured",
        "ε spent (max node)",
        "test AUC",
        "attack",
        "attack AUC",
        "TPR @ 1% FPR",
        "DP bound: TPR @ 1% FPR",
        "DP bound: AUC",
    ):
        table.add_column(
            column, justify="left" if column in {"setting measured", "attack"} else "right"
        )
    for report in reports:
        dp = report["setting"]["dp"]
        label = f"DP ε={dp['epsilon_target']:g} δ={dp['delta']:g}" if dp["enabled"] else "no DP"
        bound = report["dp_bound"]
        for attack in report["attacks"]:
            table.add_row(
                f"{report['setting']['federation']}, {label}",
                f"{bound['epsilon']:.3f}" if bound else "–",
                f"{report['utility']['roc_auc']:.4f}",
                attack["attack"],
                f"{attack['auc']:.4f}",
                f"{attack['tpr_at_1pct_fpr']:.4f}",
                f"≤ {bound['max_tpr_at_1pct_fpr']:.4f}" if bound else "none (no DP)",
                f"≤ {bound['max_auc']:.4f}" if bound else "none (no DP)",
            )
    console.print(table)


@attack_app.command("membership")
def membership(
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides of the setting, e.g. experiment=mia_overfit"
    ),
    config_dir: list[Path] | None = _CONFIG_DIR,
    run: Path | None = typer.Option(
        None, "--run", help="Attack the global model of a finished `confide simulate` run."
    ),
    compare_epsilon: list[float] | None = typer.Option(
        None, "--compare-epsilon", help="Also audit the same setting with DP at this ε."
    ),
    attack: list[str] | None = typer.Option(
        None, "--attack", help="loss (default) and/or lira (shadow models; slower)."
    ),
    shadow_models: int = typer.Option(8, "--shadow-models", help="Shadow federations for lira."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for audit.json (default: <run.root>/audits/<UTC time>)."
    ),
) -> None:
    """Membership-inference audit: members are the nodes' training rows, non-members their
    held-out rows; reports attack AUC and TPR at 1% FPR beside the bound implied by (ε, δ)."""
    from confide.config import compose_config, to_container
    from confide.core.files import atomic_write_text
    from confide.simulations.privacy_audit import ATTACKS, audit_job, audit_run, dp_variant

    attacks = attack or ["loss"]
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise typer.BadParameter(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
    console = _console()
    progress = console.print
    reports = []
    if run is not None:
        reports.append(audit_run(run, attacks).to_dict())
        root = run.parent
    else:
        config = to_container(compose_config(overrides or [], config_dir or []))
        root = Path(config["run"]["root"])
        settings = [config] + [dp_variant(config, eps) for eps in compare_epsilon or []]
        for setting in settings:
            report = audit_job(setting, attacks, shadow_models, progress=progress)
            reports.append(report.to_dict())
    _print_audit(console, reports)
    folder = out or root / "audits" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-membership")
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"overrides": overrides or [], "run": str(run) if run else None, "reports": reports}
    atomic_write_text(folder / "audit.json", json.dumps(payload, indent=2, ensure_ascii=False))
    console.print(f"Audit results: [bold]{folder / 'audit.json'}[/bold]")


def register_research_commands(app: typer.Typer) -> None:
    """Add ``confide sweep`` and ``confide attack membership`` to the main CLI."""
    app.command("sweep")(sweep)
    app.add_typer(attack_app, name="attack")
