"""Console output of a run: per-round progress lines and the closing summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from confide.server.recorder import RoundRecord

__all__ = ["RoundProgress", "dp_banner", "print_summary", "round_printer"]


def _fmt(value: Any, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


class RoundProgress:
    """Progress after every round: the current global AUC and the largest ε spent so far.

    On a terminal each round prints a rich line with a progress bar; elsewhere (CI logs, pipes)
    one plain line per round. A quiet console prints nothing.
    """

    def __init__(self, console: Console, total_rounds: int) -> None:
        self.console = console
        self.total = max(1, int(total_rounds))
        self.started = time.monotonic()
        self.previous_auc: float | None = None

    def __call__(self, record: RoundRecord) -> None:
        eps = {n: m["epsilon"] for n, m in record.train.items() if m.get("epsilon") is not None}
        top = max(eps, key=eps.get) if eps else None
        auc = record.global_metrics.get("roc_auc")
        elapsed = time.monotonic() - self.started
        clock = f"{int(elapsed // 60)}:{int(elapsed % 60):02d}"
        eps_text = f"{_fmt(eps[top], 3)} ({top})" if top else _fmt(0.0, 3)
        refused = f"  refused: {', '.join(record.refused)}" if record.refused else ""
        delta = ""
        if auc is not None and self.previous_auc is not None:
            delta = f" ({auc - self.previous_auc:+.4f})"
        self.previous_auc = auc if auc is not None else self.previous_auc
        if not self.console.is_terminal:
            self.console.print(
                f"round {record.round}/{self.total}  nodes trained {len(record.train)}  "
                f"global AUC {_fmt(auc)}{delta}  largest ε {eps_text}  elapsed {clock}{refused}",
                markup=False,
            )
            return
        texts = [
            f"[bold]round {record.round}/{self.total}[/bold]",
            f"global AUC [bold cyan]{_fmt(auc)}[/bold cyan]{delta}",
            f"largest ε [bold magenta]{escape(eps_text)}[/bold magenta]",
            f"[dim]{clock}[/dim]",
        ]
        room = self.console.width - sum(len(Text.from_markup(t).plain) + 2 for t in texts) - 2
        if room < 8 and delta:  # narrow terminal: the change since last round goes first
            texts[1] = f"global AUC [bold cyan]{_fmt(auc)}[/bold cyan]"
            room += len(delta)
        line = Table.grid(padding=(0, 2))
        bar = ProgressBar(total=self.total, completed=record.round, width=max(6, min(30, room)))
        line.add_row(texts[0], bar, *texts[1:])
        self.console.print(line)
        if refused:
            self.console.print(f"[red]{escape(refused.strip())}[/red]")


def round_printer(console: Console, total_rounds: int) -> RoundProgress:
    """The per-round progress callback for ``simulate(on_round_end=...)``."""
    return RoundProgress(console, total_rounds)


def dp_banner(console: Console, dp: dict[str, Any]) -> None:
    """Say prominently when DP is off, and which noise source the proposal names."""
    if not dp["enabled"]:
        console.print(
            Panel(
                "DIFFERENTIAL PRIVACY IS OFF for this run (dp=off). Node updates carry no "
                "formal privacy guarantee.",
                style="bold red",
            )
        )
    elif dp.get("noise") != "secure":
        console.print(
            "[yellow]DP noise is seeded (reproducible): fine for simulation; in deployment every "
            "node draws it from a secure AES-256-CTR keystream (dp.noise=secure).[/yellow]"
        )


def _print_survival(console: Console, metrics: dict[str, Any]) -> None:
    """A survival run: C-index, AUC at the horizons and IBS, each node's ε, the baselines."""
    glob = metrics["global"]
    horizons = [k for k in glob if k.startswith("auc@")]
    table = Table(title="Global survival model on the pooled held-out test set")
    for col in ("C-index", *horizons, "IBS", "rows"):
        table.add_column(col, justify="right")
    table.add_row(
        _fmt(glob["c_index"]),
        *(_fmt(glob[k]) for k in horizons),
        _fmt(glob["ibs"]),
        str(int(glob["n"])),
    )
    console.print(table)
    base = Table(title="What federation buys (C-index on the pooled test set)")
    for col in ("model", "C-index", "ε", "rows"):
        base.add_column(col, justify="right")
    for name, node in metrics["nodes"].items():
        eps = _fmt(node.get("epsilon"), 3) if metrics["dp"]["enabled"] else "DP off"
        base.add_row(f"federated, node {name}", "", eps, str(node["rows"]))
    base.add_row("federated (global)", _fmt(glob["c_index"]), "per node above", "")
    for name, b in (metrics.get("baselines") or {}).items():
        base.add_row(name, _fmt(b["pooled"]["c_index"]), _fmt(b["epsilon"], 3), str(b["rows"]))
    console.print(base)
    if not metrics["dp"]["enabled"]:
        dp_banner(console, metrics["dp"])


def _metrics_table(title: str, glob: dict[str, Any]) -> Table:
    """One row of a binary model's test metrics (ROC-AUC, PR-AUC, log-loss, Brier, KS, rows)."""
    table = Table(title=title)
    for col in ("ROC-AUC", "PR-AUC", "log-loss", "Brier", "KS", "rows"):
        table.add_column(col, justify="right")
    table.add_row(
        *(_fmt(glob[k]) for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ks")),
        str(int(glob["n"])),
    )
    return table


def _print_vertical(console: Console, metrics: dict[str, Any]) -> None:
    """A vertical run: the top model against its baselines, the PSI summary, each node's ε."""
    glob, vertical = metrics["global"], metrics.get("vertical", {})
    psi = vertical.get("psi", {})
    console.print(_metrics_table("Vertical model on the aligned held-out test rows", glob))
    console.print(
        f"PSI on '{vertical.get('join_key')}': label node set "
        f"{psi.get('label_set_size', 'padded')}, elements sent "
        + ", ".join(f"{n} {c}" for n, c in (psi.get("feature_elements") or {}).items())
        + f"; intersection {psi.get('intersection')} in {_fmt(psi.get('seconds'), 2)} s"
    )
    nodes = Table(title="Nodes")
    for col in ("node", "role", "features", "ε spent", "label DP ε", "embedding DP ε"):
        nodes.add_column(col, justify="right")
    for name, node in vertical.get("nodes", {}).items():
        dp, role = node.get("dp") or {}, node.get("role")
        on = metrics["dp"]["enabled"]
        release = _fmt(dp.get("release_epsilon"), 3) if on else "DP off"
        nodes.add_row(
            name,
            str(role),
            str(len(node.get("features") or [])),
            _fmt(dp.get("epsilon"), 3) if on else "DP off",
            release if role == "label" else "-",
            release if role == "feature" else "-",
        )
    console.print(nodes)
    base = Table(title="What joining buys (ROC-AUC on the aligned test rows)")
    for col in ("model", "ROC-AUC", "vertical minus it"):
        base.add_column(col, justify="right")
    base.add_row("vertical (this run)", _fmt(glob["roc_auc"]), "")
    for name, b in (metrics.get("baselines") or {}).items():
        auc = b["pooled"].get("roc_auc")
        gap = glob["roc_auc"] - auc if auc is not None else None
        base.add_row(name, _fmt(auc), _fmt(gap) if gap is not None else "n/a")
    console.print(base)
    if not metrics["dp"]["enabled"]:
        dp_banner(console, metrics["dp"])


def print_summary(console: Console, run_dir, metrics: dict[str, Any]) -> None:
    """Run directory, global test metrics, each node's ε, and the baselines."""
    outcome = metrics.get("outcome", {})
    console.print(f"\nRun directory: [bold]{run_dir}[/bold]")
    report = Path(run_dir) / "report.html"
    if report.exists():
        console.print(f"Report: [bold]{report}[/bold] (open in a browser)")
    if outcome.get("status") != "completed":
        console.print(f"[bold red]Run stopped:[/bold red] {outcome.get('message', '')}")
        return
    if metrics.get("kind") == "vertical":
        _print_vertical(console, metrics)
        return
    glob = metrics["global"]
    if "c_index" in glob:  # a survival run
        _print_survival(console, metrics)
        return
    table = _metrics_table("Global model on the pooled held-out test set", glob)
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
