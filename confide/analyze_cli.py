"""``confide analyze``: a DP federated analysis (statistics, RFM, DP k-means segments, data
quality), composed with Hydra like ``confide simulate`` (``--config-dir DIR federation=NAME
analysis=NAME``). This module imports only typer at the top, so ``confide --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["analyze", "register_analyze_commands"]

_OVERRIDES = typer.Argument(None, help="Hydra overrides, e.g. analysis=customer_profile")
_CONFIG_DIR = typer.Option(
    None, "--config-dir", help="A folder of your own configs, added to Hydra's search path."
)


def analyze(
    overrides: list[str] | None = _OVERRIDES,
    config_dir: list[Path] | None = _CONFIG_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (CI)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Flower's and Ray's logs."),
) -> None:
    """Run a DP analysis across the federation's nodes (Flower simulation engine); writes
    analysis.json and analysis.html to a run directory and a run-ledger record."""
    from rich.console import Console

    from confide.config import compose_config, to_container
    from confide.simulations.analyze import analysis_spec

    config = to_container(compose_config(overrides or [], config_dir or []))
    spec = analysis_spec(config)  # one line when no analysis is selected or the spec is bad
    quiet = quiet or bool(config["run"].get("quiet"))
    console = Console(quiet=quiet, highlight=False)
    if not console.is_terminal:
        console.width = 130  # pipes and CI logs: one line per step and per part list
    parts = ", ".join(f"{name} {eps:g}" for name, eps in spec.parts().items())
    console.print(
        f"Analysis '{spec.name}' on federation '{config['federation']['name']}': "
        f"ε {spec.epsilon:g} per node ({parts}); noise added at each node (local DP)"
    )
    from confide.simulations.analyze import analyze as run  # the engine: after the spec check

    def progress(step, total: int) -> None:
        console.print(f"  step {step.step} {step.iteration}: ε {step.epsilon:g} per node")

    result = run(config, verbose=verbose, on_step=progress)
    if result.status != "completed":
        console.print(f"[bold red]stopped[/bold red]: {result.analysis.get('message', '')}")
    print(f"run directory: {result.run_dir}")
    if result.status != "completed":
        raise typer.Exit(1)


def register_analyze_commands(app: typer.Typer) -> None:
    """Add ``confide analyze`` to the main CLI."""
    app.command("analyze")(analyze)
