"""CLI of the compliance review: ``confide audit``, ``confide rules`` and ``confide ledger``.

Registered on the main app by :func:`register_audit_commands` (one import, one line in
``confide/cli.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from confide.config import compose_config, to_container

__all__ = ["ledger_app", "register_audit_commands"]

ledger_app = typer.Typer(
    help="The tamper-evident run ledger (one record per run).", no_args_is_help=True
)

_LEDGER = typer.Option(
    None, "--ledger", help="Run ledger file (default: run.ledger of the default config)."
)
_KEY = typer.Option(
    None,
    "--key-file",
    help="Key file for the ledger's HMACs (default: "
    "$CONFIDE_RUN_LEDGER_KEY_FILE; none: hash chain only).",
)


def audit_command(
    overrides: list[str] | None = typer.Argument(
        None, help="Hydra overrides, exactly as for confide simulate."
    ),
    config_dir: list[Path] | None = typer.Option(
        None, "--config-dir", help="A folder of your own configs, added to Hydra's search path."
    ),
    fmt: str = typer.Option("md", "--format", help="md (people), json (machines) or html."),
    out: Path | None = typer.Option(None, "--out", help="Write the review to this file."),
) -> None:
    """Review a job before it runs: fields, tiers, transforms, DP, transport; exit 1 on ERROR."""
    from confide.audit import audit, render
    from confide.core.files import atomic_write_text

    report = audit(overrides or [], config_dir or [])
    text = render(report, fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(
            f"review: {out} - {report.count('ERROR')} error(s), {report.count('WARN')} warning(s)"
        )
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def rules_command(
    out: Path | None = typer.Option(None, "--out", help="Write docs/rules.md here."),
) -> None:
    """Print the rule catalogue (every rule with its severity and rationale) as Markdown."""
    from confide.core.files import atomic_write_text
    from confide.privacy.registry import rule_catalogue_document

    text = rule_catalogue_document()
    if out is None:
        typer.echo(text, nl=False)
    else:
        atomic_write_text(out, text)
        typer.echo(f"rule catalogue: {out}")


def _ledger(path: Path | None, key_file: Path | None):
    from confide.privacy.run_ledger import RunLedger, load_ledger_key

    if path is None:
        path = Path(str(to_container(compose_config())["run"]["ledger"]))
    return RunLedger(path, load_ledger_key(key_file))


@ledger_app.command("show")
def ledger_show(
    ledger: Path | None = _LEDGER,
    key_file: Path | None = _KEY,
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
) -> None:
    """List every run recorded in the ledger, and the chain's head."""
    book = _ledger(ledger, key_file)
    records = book.records()
    state = book.verify()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ledger": str(book.path),
                    "records": records,
                    "verified": state.ok,
                    "message": state.message,
                    "count": state.count,
                    "head": state.head,
                },
                indent=2,
            )
        )
        return
    typer.echo(f"run ledger {book.path}: {len(records)} record(s)")
    for rec in records:
        eps = ", ".join(f"{k} {v:.3f}" for k, v in (rec.get("epsilon") or {}).items())
        model = (rec.get("model_sha256") or "none")[:12]
        typer.echo(
            f"{rec.get('seq'):>4}  {rec.get('time')}  {rec.get('outcome'):<9}  "
            f"{rec.get('run_id')}  config {str(rec.get('config_sha256'))[:12]}  "
            f"model {model}  epsilon: {eps or '-'}"
        )
    typer.echo(f"head: {state.head} (anchor this value elsewhere to detect a rewrite)")
    typer.echo(f"verify: {'ok' if state.ok else 'FAILED: ' + state.message}")


@ledger_app.command("verify")
def ledger_verify(ledger: Path | None = _LEDGER, key_file: Path | None = _KEY) -> None:
    """Check the hash chain (and HMACs with a key) and the head; exit 1 naming the first bad
    record."""
    book = _ledger(ledger, key_file)
    state = book.verify()
    macs = "hash chain and HMACs" if state.macs_checked else "hash chain (no HMAC key given)"
    if state.ok:
        typer.echo(f"ok: {state.count} record(s), {macs} verified; head {state.head}")
        return
    typer.echo(f"FAILED: {book.path}: {state.message}", err=True)
    raise typer.Exit(1)


def register_audit_commands(app: typer.Typer) -> None:
    """Add ``audit``, ``rules`` and the ``ledger`` group to the main CLI."""
    app.command("audit")(audit_command)
    app.command("rules")(rules_command)
    app.add_typer(ledger_app, name="ledger")
