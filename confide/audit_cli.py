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


def _cell(value: object) -> str:
    """A record field as the listing prints it: plain scalars only (never a nested value)."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int | str):
        return str(value)
    return "?"


def _eps(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    return f"{value:.3f}"


@ledger_app.command("show")
def ledger_show(
    ledger: Path | None = _LEDGER,
    key_file: Path | None = _KEY,
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON."),
) -> None:
    """List every run recorded in the ledger, and the chain's head; exit 1 when the ledger
    fails verification."""
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
    else:
        typer.echo(f"run ledger {book.path}: {len(records)} record(s)")
        for rec in records:
            eps_map = rec.get("epsilon")
            eps = (
                ", ".join(f"{_cell(k)} {_eps(v)}" for k, v in eps_map.items())
                if isinstance(eps_map, dict)
                else "?"
            )
            model = rec.get("model_sha256")
            model_cell = _cell(model)[:12] if model is not None else "none"
            typer.echo(
                f"{_cell(rec.get('seq')):>4}  {_cell(rec.get('time'))}  "
                f"{_cell(rec.get('outcome')):<9}  {_cell(rec.get('run_id'))}  "
                f"config {_cell(rec.get('config_sha256'))[:12]}  model {model_cell}  "
                f"epsilon: {eps or '-'}"
            )
        typer.echo(f"head: {state.head} (anchor this value elsewhere to detect a rewrite)")
        if state.ok:
            typer.echo(f"verify: {state.message}")
    if not state.ok:
        typer.echo(f"FAILED: {book.path}: {state.message}", err=True)
        raise typer.Exit(1)


@ledger_app.command("verify")
def ledger_verify(
    ledger: Path | None = _LEDGER,
    key_file: Path | None = _KEY,
    budget: list[str] | None = typer.Option(
        None,
        "--budget",
        help="NODE=PATH of a node's budget ledger, checked against the run ledger's last "
        "record of it (deleted or rewound); repeatable.",
    ),
) -> None:
    """Check the hash chain (and HMACs with a key) and the head; exit 1 naming the first bad
    record. With ``--budget``, also check node budget ledgers against their anchors."""
    from confide.privacy.budget_ledger import BudgetLedger
    from confide.privacy.run_ledger import check_budget_continuity

    book = _ledger(ledger, key_file)
    state = book.verify()
    macs = "hash chain and HMACs" if state.macs_checked else "hash chain (no HMAC key given)"
    if not state.ok:
        typer.echo(f"FAILED: {book.path}: {state.message}", err=True)
        raise typer.Exit(1)
    for item in budget or []:
        node, sep, path = item.partition("=")
        if not sep or not node or not path:
            typer.echo("FAILED: --budget takes NODE=PATH (rule: ledger continuity)", err=True)
            raise typer.Exit(1)
        check_budget_continuity(book, BudgetLedger(Path(path), node, 0.0))
        typer.echo(f"ok: budget ledger of node '{node}' is not behind the run ledger")
    typer.echo(f"ok: {state.count} record(s), {macs} verified; head {state.head}")
    if state.legacy_mac:
        typer.echo(f"note: {state.message}")


@ledger_app.command("repair")
def ledger_repair(ledger: Path | None = _LEDGER, key_file: Path | None = _KEY) -> None:
    """Remove a torn last line (an append killed mid-line or before its head update), after
    backing up the removed bytes; refuse any other damage."""
    book = _ledger(ledger, key_file)
    entry = book.repair()
    typer.echo(
        f"repaired {book.path}: removed the {entry['kind']} ({entry['removed_bytes']} bytes, "
        f"sha256 {entry['removed_sha256']}); backup {book.path.with_name(entry['backup'])}; "
        f"{entry['kept_records']} record(s) kept, head {entry['head']}; logged in "
        f"{book.path.name}.repairs"
    )


@ledger_app.command("migrate-key")
def ledger_migrate_key(ledger: Path | None = _LEDGER, key_file: Path | None = _KEY) -> None:
    """Re-MAC a ledger made under the legacy pseudonym-derived key with the run ledger's own
    key, after verifying it under the legacy key (once; recorded in the head)."""
    book = _ledger(ledger, key_file)
    done = book.migrate_key()
    if done is None:
        typer.echo(f"{book.path}: nothing to migrate (MACs already use the run ledger's key)")
        return
    typer.echo(
        f"migrated {book.path}: {done['records']} record(s) re-MAC'd under the run ledger's "
        f"own key at {done['time']} (recorded in the head)"
    )


def register_audit_commands(app: typer.Typer) -> None:
    """Add ``audit``, ``rules`` and the ``ledger`` group to the main CLI."""
    app.command("audit")(audit_command)
    app.command("rules")(rules_command)
    app.add_typer(ledger_app, name="ledger")
