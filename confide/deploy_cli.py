"""CLI for multi-organisation deployment: ``confide certs ...`` and ``confide deploy``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from confide.config import compose_config, to_container

__all__ = ["certs_app", "deploy", "register_deploy_commands"]

certs_app = typer.Typer(
    help="Trial CA, SuperLink TLS certificate and SuperNode authentication keys.",
    no_args_is_help=True,
)


@certs_app.command("init")
def certs_init(
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the files (created)."),
    node: list[str] | None = typer.Option(
        None, "--node", help="A SuperNode to make an authentication key pair for (repeatable)."
    ),
    host: list[str] | None = typer.Option(
        None,
        "--host",
        help="SuperLink host name or IP for the certificate (repeatable; "
        "default 127.0.0.1 and localhost).",
    ),
    days: int = typer.Option(365, "--days", help="Validity in days."),
    force: bool = typer.Option(False, "--force", help="Replace existing files."),
) -> None:
    """Create a trial CA, the SuperLink's certificate and SuperNode authentication keys."""
    from confide.certs import DEFAULT_HOSTS, init_certificates

    made = init_certificates(out_dir, node or [], host or list(DEFAULT_HOSTS), days, force)
    typer.echo(f"CA certificate         {made.ca_cert}   (give to every SuperNode and to flwr)")
    typer.echo(f"CA key                 {made.ca_key}   (keep offline)")
    typer.echo(f"SuperLink certificate  {made.server_cert}")
    typer.echo(f"SuperLink key          {made.server_key}")
    for name, (private, public) in made.node_keys.items():
        typer.echo(f"node '{name}' auth key   {private}   public: {public}")


@certs_app.command("node")
def certs_node(
    name: str = typer.Argument(..., help="The SuperNode's name."),
    out_dir: Path = typer.Option(..., "--out-dir", help="Folder for the key pair."),
    force: bool = typer.Option(False, "--force", help="Replace existing files."),
) -> None:
    """Create one SuperNode authentication key pair (an organisation runs this itself)."""
    from confide.certs import create_node_auth_keys

    private, public = create_node_auth_keys(out_dir, name, force)
    typer.echo(f"private key {private} (stays on the node)   public key {public} (register it)")


def deploy(
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides, e.g. rounds=3 secure=secagg"
    ),
    config_dir: list[Path] | None = typer.Option(
        None, "--config-dir", help="A folder of your own configs, added to Hydra's search path."
    ),
    superlink: str = typer.Option(
        "127.0.0.1:9093", "--superlink", help="The SuperLink's address, host:port."
    ),
    root_certificates: Path | None = typer.Option(
        None, "--root-certificates", help="CA certificate that signed the SuperLink's (TLS)."
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="No TLS. Local demos only; printed as a warning."
    ),
    run_root: Path = typer.Option(
        Path("runs"), "--run-root", help="Where the ServerApp writes <run-id>/ (coordinator)."
    ),
    app_dir: Path | None = typer.Option(None, "--app", help="Confide's source folder."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow the run to its end."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait for the run."),
) -> None:
    """Start the composed job on a running SuperLink (deployment engine) and follow it."""
    from confide.deploy import INSECURE_WARNING, SECURE_NOISE_DEFAULT, start_run, wait_for_run

    if insecure:
        typer.secho(INSECURE_WARNING, fg=typer.colors.RED, bold=True, err=True)
    # secure DP noise is the deployment default; an explicit dp.noise override comes later and wins
    composed = compose_config([SECURE_NOISE_DEFAULT, *(overrides or [])], config_dir or [])
    config = to_container(composed)
    started = start_run(config, superlink, root_certificates, insecure, run_root, app_dir)
    typer.echo(f"run {started.run_id} started at {superlink}; outputs: {started.run_dir}")
    if not wait:
        return
    done = wait_for_run(
        started,
        superlink,
        root_certificates,
        insecure,
        timeout,
        on_status=lambda s: typer.echo(f"run {started.run_id}: {s}"),
    )
    if done.outcome is not None:
        typer.echo(json.dumps(done.outcome, indent=2))
    report = done.run_dir / "report.html"
    if report.is_file():
        typer.echo(f"report: {report}")
    ok = done.status == "finished:completed" and (done.outcome or {}).get("status") in (
        None,
        "completed",
    )
    if not ok:
        sys.exit(1)


def register_deploy_commands(app: typer.Typer) -> None:
    """Add ``confide certs ...`` and ``confide deploy`` to the main CLI."""
    app.add_typer(certs_app, name="certs")
    app.command("deploy")(deploy)
