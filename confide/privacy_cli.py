"""Command line: ``confide privacy ...`` (``privacy_app``) and ``confide keys ...`` (``keys_app``).

It lives in the CLI layer, so the privacy package itself stays free of typer.

Expected errors print one line to stderr and exit with code 2 (never a traceback). An output
path that resolves to any input of the command (data, policy, key file) is refused before
anything is written. While a command writes, SIGTERM and SIGINT unwind like errors, so the
atomic writer removes its temporary file (no plaintext left behind; exit 128 + signal number);
the next run for the same output also removes temporary files an earlier kill left.
``scan --strict`` exits 1 when there are ERROR or WARN findings.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from confide.core.errors import ConfideError
from confide.core.paths import check_output_path
from confide.core.signals import Terminated, terminate_as_exception

if TYPE_CHECKING:
    from confide.privacy.keys import Keyring

__all__ = ["keys_app", "privacy_app"]

#: Rows per chunk unless ``--chunksize`` says otherwise; equal to
#: ``confide.privacy.apply.DEFAULT_CHUNKSIZE`` (checked in tests/confide/test_cli_imports.py),
#: repeated here so that ``--help`` need not import the pandas-based transforms.
DEFAULT_CHUNKSIZE = 100_000

privacy_app = typer.Typer(
    help="Privacy policies, transforms, PII scan.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(
    help="Key files for pseudonyms and field encryption.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _expected_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with terminate_as_exception():
                return fn(*args, **kwargs)
        except Terminated as exc:
            typer.echo(f"error: {exc}; no partial output was kept", err=True)
            raise typer.Exit(exc.exit_code) from None
        except ConfideError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"{exc.filename or ''}: {exc.strerror or type(exc).__name__}")

    return wrapper


def _check_out(out: Path, policy: Path, data: Path, keys: Path | None) -> None:
    """Refuse an output path that is (or links to) the policy, the data or the key file."""
    from confide.privacy.keys import ENV_KEYRING_FILE

    key_file = keys if keys is not None else os.environ.get(ENV_KEYRING_FILE) or None
    check_output_path(out, {"policy": policy, "data file": data, "key file": key_file})


def _keyring(keys: Path | None, required: bool) -> Keyring | None:
    from confide.privacy.keys import ENV_KEYRING, ENV_KEYRING_FILE, Keyring

    if (
        keys is not None
        or required
        or os.environ.get(ENV_KEYRING)
        or os.environ.get(ENV_KEYRING_FILE)
    ):
        return Keyring.load(keys)
    return None


PolicyOpt = Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.")]
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="Input CSV or Parquet file.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Output file (written atomically).")]
ChunkOpt = Annotated[int, typer.Option("--chunksize", min=1, help="Rows per chunk.")]


@privacy_app.command("check-policy")
@_expected_errors
def check_policy(policy: Annotated[Path, typer.Argument(help="Policy YAML file.")]) -> None:
    """Validate a policy file and print its columns, tiers and transforms."""
    from confide.privacy.policy import load_policy

    pol = load_policy(policy)
    typer.echo(
        f"policy {pol.source}: dataset '{pol.dataset}', tier {pol.tier.value}, "
        f"{len(pol.columns)} columns, sha256 {pol.sha256[:16]}"
    )
    for c in pol.columns.values():
        maps = f" -> {c.maps_to}" if c.maps_to != c.name else ""
        typer.echo(f"  {c.name}: {c.tier.value}, role {c.role}, {c.transform}{maps}")
    typer.echo(
        f"  dp: max_epsilon_per_run {pol.dp.max_epsilon_per_run:g}, lifetime_epsilon "
        f"{pol.dp.lifetime_epsilon:g}, max_delta {pol.dp.max_delta:g}, "
        f"require_dp {str(pol.dp.require_dp).lower()}"
    )


@privacy_app.command("scan")
@_expected_errors
def scan(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet file to scan.")],
    policy: Annotated[Path | None, typer.Option("--policy", "-p")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 on ERROR/WARN.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
    node: Annotated[str, typer.Option("--node")] = "local",
) -> None:
    """Find columns whose content looks like identity data."""
    from confide.privacy.pii_scan import scan_file
    from confide.privacy.policy import load_policy

    pol = load_policy(policy) if policy is not None else None
    report = scan_file(data, pol, node=node)
    if as_json:
        typer.echo(json.dumps([f.__dict__ for f in report.findings], ensure_ascii=False, indent=2))
    else:
        for f in report.findings:
            typer.echo(str(f))
        typer.echo(f"{len(report.columns)} columns scanned, {len(report.findings)} findings")
    if strict and report.has("ERROR", "WARN"):
        raise typer.Exit(1)


@privacy_app.command("apply")
@_expected_errors
def apply(
    policy: PolicyOpt,
    data: DataOpt,
    out: OutOpt,
    keys: Annotated[Path | None, typer.Option("--keys", "-k")] = None,
    chunksize: ChunkOpt = DEFAULT_CHUNKSIZE,
) -> None:
    """Apply a policy to a data file (schema check, transforms, drops)."""
    from confide.privacy.apply import apply_file
    from confide.privacy.policy import load_policy

    _check_out(out, policy, data, keys)
    pol = load_policy(policy)
    needs = any(c.spec.needs_key for c in pol.columns.values())
    stats = apply_file(
        pol, data, out, _keyring(keys, False) if needs or keys else None, chunksize=chunksize
    )
    typer.echo(
        f"wrote {stats.out_path}: {stats.rows} rows, {len(stats.columns_out)} columns, "
        f"{stats.chunks} chunks, {stats.seconds:.2f} s"
    )


@privacy_app.command("decrypt")
@_expected_errors
def decrypt(
    policy: PolicyOpt,
    data: DataOpt,
    out: OutOpt,
    keys: Annotated[Path, typer.Option("--keys", "-k")],
    chunksize: ChunkOpt = DEFAULT_CHUNKSIZE,
) -> None:
    """Owner-side: decrypt the encrypt:* columns of an applied file."""
    from confide.privacy.apply import decrypt_file
    from confide.privacy.policy import load_policy

    _check_out(out, policy, data, keys)
    stats = decrypt_file(load_policy(policy), data, out, _keyring(keys, True), chunksize)
    typer.echo(f"wrote {stats.out_path}: {stats.rows} rows decrypted")


@privacy_app.command("rotate")
@_expected_errors
def rotate(
    policy: PolicyOpt,
    data: DataOpt,
    out: OutOpt,
    keys: Annotated[Path, typer.Option("--keys", "-k")],
    chunksize: ChunkOpt = DEFAULT_CHUNKSIZE,
) -> None:
    """Re-encrypt the encrypt:* columns under the key file's active key."""
    from confide.privacy.apply import rotate_file
    from confide.privacy.policy import load_policy

    _check_out(out, policy, data, keys)
    ring = _keyring(keys, True)
    stats = rotate_file(load_policy(policy), data, out, ring, chunksize)
    typer.echo(f"wrote {stats.out_path}: {stats.rows} rows re-encrypted under key '{ring.active}'")


@keys_app.command("new")
@_expected_errors
def keys_new(path: Annotated[Path, typer.Argument(help="Key file to create (mode 600).")]) -> None:
    """Create a key file with one random key; refuses to overwrite."""
    from confide.privacy.keys import new_keyring_file

    ring = new_keyring_file(path)
    typer.echo(f"wrote {path} (mode 600) with active key '{ring.active}'")


@keys_app.command("rotate")
@_expected_errors
def keys_rotate(path: Annotated[Path, typer.Argument(help="Existing key file.")]) -> None:
    """Add a new random key and make it active; old keys stay for decryption."""
    from confide.privacy.keys import add_key

    kid = add_key(path)
    typer.echo(f"added key '{kid}' to {path}; it is now active")
