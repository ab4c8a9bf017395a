"""Console output of a run: per-round progress lines and the closing summary."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from server.recorder import RoundRecord

__all__ = ["dp_banner", "print_summary", "round_printer"]


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def round_printer(console: Console, total_rounds: int):
    """A callback printing one line per completed round."""

    def on_round_end(record: RoundRecord) -> None:
        eps = [m.get("epsilon", 0.0) for m in record.train.values()]
        auc = record.global_metrics.get("roc_auc")
        refused = f"  refused: {', '.join(record.refused)}" if record.refused else ""
        console.print(
            f"round {record.round}/{total_rounds}  nodes trained {len(record.train)}  "
            f"global AUC {_fmt(auc)}  largest ε {_fmt(max(eps) if eps else 0.0, 3)}{refused}"
        )

    return on_round_end


def dp_banner(console: Console, dp: dict[str, Any]) -> None:
    """Say prominently when DP is off or the secure RNG is off."""
    if not dp["enabled"]:
        console.print(
            Panel(
                "DIFFERENTIAL PRIVACY IS OFF for this run (dp=off). Node updates carry no "
                "formal privacy guarantee.",
                style="bold red",
            )
        )
    elif not dp.get("secure_mode"):
        console.print(
            "[yellow]DP secure RNG is off (development mode): fine for experiments, turn "
            "dp.secure_mode=true for production.[/yellow]"
        )


def print_summary(console: Console, run_dir, metrics: dict[str, Any]) -> None:
    """Run directory, global test metrics, each node's ε, and the baselines."""
    outcome = metrics.get("outcome", {})
    console.print(f"\nRun directory: [bold]{run_dir}[/bold]")
    if outcome.get("status") != "completed":
        console.print(f"[bold red]Run stopped:[/bold red] {outcome.get('message', '')}")
        return
    glob = metrics["global"]
    table = Table(title="Global model on the pooled held-out test set")
    for col in ("ROC-AUC", "PR-AUC", "log-loss", "Brier", "KS", "rows"):
        table.add_column(col, justify="right")
    table.add_row(
        *(_fmt(glob[k]) for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ks")),
        str(int(glob["n"])),
    )
    console.print(table)
    nodes = Table(title="Nodes")
    for col in ("node", "rows", "positive rate", "ε spent", "global AUC on own test"):
        nodes.add_column(col, justify="right")
    for name, node in metrics["nodes"].items():
        nodes.add_row(
            name,
            str(node["rows"]),
            _fmt(node["positive_rate"], 3),
            _fmt(node["epsilon"], 3) if metrics["dp"]["enabled"] else "DP off",
            _fmt(node["global_model_on_own_test"]["roc_auc"]),
        )
    console.print(nodes)
    if "baselines" in metrics:
        base = Table(title="What federation buys (ROC-AUC on the pooled test set)")
        for col in ("model", "ROC-AUC", "ε", "rows"):
            base.add_column(col, justify="right")
        base.add_row("federated (global)", _fmt(glob["roc_auc"]), "per node above", "")
        for name, b in metrics["baselines"].items():
            base.add_row(name, _fmt(b["pooled"]["roc_auc"]), _fmt(b["epsilon"], 3), str(b["rows"]))
        console.print(base)
    if not metrics["dp"]["enabled"]:
        dp_banner(console, metrics["dp"])
