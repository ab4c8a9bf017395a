"""The `confide` command line: simulate, baselines, synthetic data, scoring, privacy tools.

Config-driven commands take Hydra overrides as arguments (``dp.epsilon=1 model=mlp``) and
``--config-dir DIR`` to add a user's own config folder to Hydra's search path.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from confide.core.errors import ConfideError
from confide.privacy_cli import keys_app, privacy_app

__all__ = ["app", "main"]

app = typer.Typer(
    help="Confide: privacy-preserving federated modeling for customer analytics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Synthetic customer data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(privacy_app, name="privacy", help="Policies, transforms, PII scan.")
app.add_typer(keys_app, name="keys", help="Key files for encryption and pseudonyms.")

_OVERRIDES = typer.Argument(None, help="Hydra overrides, e.g. dp.epsilon=1 model=mlp")
_CONFIG_DIR = typer.Option(
    None, "--config-dir", help="A folder of your own configs, added to Hydra's search path."
)


def _console(quiet: bool = False) -> Console:
    console = Console(quiet=quiet, highlight=False)
    if not console.is_terminal:
        console.width = 110  # pipes and CI logs: wide enough for the summary tables
    return console


def _compose(overrides: list[str] | None, config_dir: list[Path] | None) -> dict:
    from confide.config import compose_config, to_container

    return to_container(compose_config(overrides or [], config_dir or []))


@app.command()
def simulate(
    overrides: list[str] | None = _OVERRIDES,
    config_dir: list[Path] | None = _CONFIG_DIR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output (CI)."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Flower's and Ray's logs."),
) -> None:
    """Run a local federated simulation (Flower simulation engine) and its baselines."""
    config = _compose(overrides, config_dir)
    quiet = quiet or bool(config["run"].get("quiet"))
    console = _console(quiet)
    from confide.clients.preflight import preflight_data
    from confide.job import preflight_config

    job = preflight_config(config)  # names, numbers, run directory, run ledger: no engine yet
    nodes = job.nodes  # listed, or expanded from a source + partition
    if job.vertical is None:
        preflight_data(job)  # every CSV node's data under its policy, before the engine loads
        console.print(
            f"Federation '{config['federation']['name']}': {len(nodes)} nodes, task "
            f"'{config['task']['name']}', model '{config['model']['name']}', strategy "
            f"'{config['strategy']['name']}', {config['rounds']} rounds"
        )
    else:  # the vertical driver checks every node's policy and data before the engine
        console.print(
            f"Vertical federation '{config['federation']['name']}': {len(nodes)} nodes "
            f"(label node '{job.vertical.label_node}', join key '{job.vertical.join_key}'), "
            f"task '{config['task']['name']}', model '{config['model']['name']}', PSI then "
            f"split learning over {config['rounds']} x {config['train']['local_epochs']} epochs"
        )
    from confide.simulations.simulate import simulate as run  # the engine: after preflight
    from confide.summary import dp_banner, print_summary, round_printer

    dp_banner(console, config["dp"])
    result = run(
        config, on_round_end=round_printer(console, int(config["rounds"])), verbose=verbose
    )
    print_summary(_console(False) if not quiet else console, result.run_dir, result.metrics)
    if quiet:
        print(f"run directory: {result.run_dir}")
    if result.status != "completed":
        raise typer.Exit(1)


@app.command()
def baseline(
    overrides: list[str] | None = _OVERRIDES,
    config_dir: list[Path] | None = _CONFIG_DIR,
    out: Path | None = typer.Option(None, "--out", help="Write the results as JSON here."),
) -> None:
    """Centralised (with and without DP) and local-only baselines on the same data."""
    import tempfile

    from confide.job import parse_job
    from confide.modeling.survival_spec import SurvivalTaskSpec
    from confide.simulations.baselines import run_baselines
    from confide.simulations.federation import materialize_synthetic_nodes
    from confide.simulations.simulate import preflight
    from confide.simulations.survival_baselines import run_survival_baselines

    job = parse_job(_compose(overrides, config_dir))
    survival = isinstance(job.task, SurvivalTaskSpec)
    with tempfile.TemporaryDirectory(prefix="confide-baseline-") as tmp:
        job = materialize_synthetic_nodes(job, Path(tmp))
        results = (run_survival_baselines if survival else run_baselines)(job, preflight(job))
    rows = {b.name: {"pooled": b.pooled, "own": b.own, "epsilon": b.epsilon} for b in results}
    key, label = ("c_index", "C-index") if survival else ("roc_auc", "ROC-AUC")
    console = _console()
    for name, r in rows.items():
        console.print(f"{name:32s} {label} {r['pooled'][key]:.4f}  ε {r['epsilon']:.3f}")
    if out is not None:
        from confide.core.files import atomic_write_text

        atomic_write_text(out, json.dumps(rows, indent=2))


@app.command("config")
def show_config(
    overrides: list[str] | None = _OVERRIDES,
    config_dir: list[Path] | None = _CONFIG_DIR,
) -> None:
    """Print the fully resolved config a run with these overrides would use."""
    import yaml

    typer.echo(yaml.safe_dump(_compose(overrides, config_dir), allow_unicode=True, sort_keys=False))


@data_app.command("synth")
def data_synth(
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for <node>.csv files."),
    profile: list[str] | None = typer.Option(
        None, "--profile", help="Node profile(s); default: the default federation."
    ),
    rows: int | None = typer.Option(None, "--rows", help="Rows per node (default: profile's)."),
    seed: int = typer.Option(42, "--seed"),
) -> None:
    """Generate synthetic customer records (deterministic by seed) as one CSV per node."""
    from confide.simulations.node_profiles import default_federation, get_profile
    from confide.simulations.synth import generate_federation, write_federation

    profiles = [get_profile(p, rows) for p in profile] if profile else default_federation()
    nodes = generate_federation(profiles, seed)
    paths = write_federation(nodes, out_dir)
    for node in nodes:
        oracle = ", ".join(f"{k} {v:.3f}" for k, v in node.oracle_auc.items())
        typer.echo(f"{paths[node.profile.name]}  rows {len(node.frame)}  oracle AUC: {oracle}")


@app.command()
def score(
    overrides: list[str] | None = _OVERRIDES,
    run: Path = typer.Option(..., "--run", help="A completed run directory."),
    data: Path | None = typer.Option(None, "--data", help="CSV of records to score."),
    policy: Path | None = typer.Option(None, "--policy", help="The node's policy file."),
    out: Path = typer.Option(..., "--out", help="Output CSV (id, probability)."),
    keys: Path | None = typer.Option(None, "--keys", help="Key file (for pseudonymised ids)."),
    config_dir: list[Path] | None = _CONFIG_DIR,
) -> None:
    """Score new records with a run's global model, through the node's policy and encoding.

    A vertical run is scored by every party: give the federation whose nodes point at the new
    records (``--config-dir DIR federation=NAME``); the label node writes the scores."""
    from confide.clients.scoring import score_file
    from confide.core.paths import check_output_path

    if overrides or config_dir:
        _score_vertical(run, out, overrides, config_dir)
        return
    if data is None or policy is None:
        raise typer.BadParameter("--data and --policy are required to score a horizontal run")

    inputs = {"data file": data, "policy": policy, "key file": keys, "model": run / "model.pt"}
    check_output_path(out, inputs)  # refused before anything is read or written
    count = score_file(run, data, policy, out, keys)
    typer.echo(f"scored {count} rows -> {out}")


def _score_vertical(
    run: Path, out: Path, overrides: list[str] | None, config_dir: list[Path] | None
) -> None:
    from confide.clients.vertical_scoring import VerticalScoringError, score_vertical
    from confide.core.paths import check_output_path
    from confide.job import parse_job

    job = parse_job(_compose(overrides, config_dir))
    if job.vertical is None:
        raise VerticalScoringError(
            "config federation: --config-dir/overrides score a vertical run; a horizontal run "
            "is scored with --data and --policy (rule: score)"
        )
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    if metrics.get("kind") != "vertical" or metrics.get("outcome", {}).get("status") != "completed":
        raise VerticalScoringError(f"{run}: not a completed vertical run (rule: score)")
    inputs = {f"data of {n.name}": n.data for n in job.nodes if n.data is not None}
    check_output_path(out, inputs)  # refused before anything is read or written
    result = score_vertical(job, str(metrics["run_id"]), out)
    typer.echo(
        f"scored {result.scored} of the label node's {result.label_records} records "
        f"(the ones every node holds) -> {out}"
    )


# --- feature commands: each feature registers itself here with one import and one line.
# Registration modules import only typer at the top; a command imports what it runs when it
# runs, so `confide --help` and the privacy/keys/audit/rules/ledger/certs commands never load
# torch, Opacus, Flower or Ray (tests/confide/test_cli_imports.py).
from confide.report_cli import register_report_commands  # noqa: E402

register_report_commands(app)
from confide.deploy_cli import register_deploy_commands  # noqa: E402

register_deploy_commands(app)
from confide.simulations.cli import register_research_commands  # noqa: E402

register_research_commands(app)
from confide.audit_cli import register_audit_commands  # noqa: E402

register_audit_commands(app)
from confide.node_check import register_node_commands  # noqa: E402

register_node_commands(app)
from confide.analyze_cli import register_analyze_commands  # noqa: E402

register_analyze_commands(app)


def main() -> None:
    """Console entry point: expected errors print one line and exit with status 2.

    With ``standalone_mode=False`` click returns (rather than raises) the code of a
    ``typer.Exit``, so the returned value is the process's exit status.
    """
    import click

    try:
        status = app(standalone_mode=False)
    except ConfideError as exc:  # every expected error, privacy's included
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:  # usage errors
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
