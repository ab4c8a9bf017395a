"""`confide node check`: a partner checks its own node before it joins a federation.

It takes the same inputs as its SuperNode (``--node-config``, ``--superlink``,
``--root-certificates``, ``--auth-supernode-private-key``) plus the federation's shared task
(Hydra overrides, as for ``confide simulate``), and prints one line per check with a verdict:

* ``node-config``: known keys, a safe node name, a finite ``max-epsilon-per-run``;
* ``policy``: the policy file parses under the strict rules;
* ``data``: the data against the policy and the task, through the reader, transforms, rules
  and encoding that training uses (``confide.clients.node_data``);
* ``keys``: the key file is a regular owner-only file with a valid active key;
* ``ledger``: the budget ledger validates; what is left of the lifetime budget;
* ``tls-root``: the root certificate parses, is a CA and is valid now (and for how long);
* ``auth-key``: the SuperNode authentication key is an owner-only OpenSSH EC private key;
* ``superlink``: a TLS handshake with the SuperLink succeeds under that root certificate.

It reads only; it never writes a file (no ledger lock, no cache). Exit status 1 on any FAIL.
"""

from __future__ import annotations

import datetime as dt
import math
import socket
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confide.core.errors import ConfideError
from confide.core.files import read_regular_file
from confide.job import NodeSpec, check_name
from confide.modeling.training_settings import NOISE_KINDS

__all__ = ["NODE_CONFIG_KEYS", "NodeCheck", "format_check", "parse_node_config", "run_checks"]

NODE_CONFIG_KEYS = (
    "name",
    "data-path",
    "policy-path",
    "keys-path",
    "ledger-path",
    "max-epsilon-per-run",
    "audit-dir",
    "dp-noise",
)
_EXPIRY_WARNING_DAYS = 30
_MAX_CERT_BYTES = 1 << 20


@dataclass(frozen=True)
class NodeCheck:
    """One check's verdict: ``PASS``, ``FAIL`` or ``SKIP`` (not configured), and one line."""

    name: str
    verdict: str
    detail: str


def format_check(check: NodeCheck) -> str:
    """``PASS  data         ...``: one line per check."""
    return f"{check.verdict:<4}  {check.name:<11}  {check.detail}"


class NodeConfigError(ConfideError):
    """The ``--node-config`` string is not a valid node configuration."""


def parse_node_config(text: str) -> dict[str, Any]:
    """Parse a SuperNode ``--node-config`` string (``key="value" key=3.0``) with Flower's own
    parser; unknown keys are refused."""
    from flwr.common.config import parse_config_args

    try:
        parsed = dict(parse_config_args([text]))
    except Exception as exc:
        raise NodeConfigError(
            f"--node-config: not a list of key=value pairs ({type(exc).__name__}) "
            "(rule: node config)"
        ) from None
    unknown = sorted(set(parsed) - set(NODE_CONFIG_KEYS))
    if unknown:
        raise NodeConfigError(
            f"--node-config: unknown key(s) {unknown}; known: {', '.join(NODE_CONFIG_KEYS)} "
            "(rule: node config)"
        )
    return parsed


def _path(cfg: Mapping[str, Any], key: str) -> Path | None:
    value = cfg.get(key)
    return Path(str(value)).expanduser() if value not in (None, "") else None


def _node_spec(cfg: Mapping[str, Any]) -> NodeSpec:
    for key in ("name", "data-path", "policy-path"):
        if cfg.get(key) in (None, ""):
            raise NodeConfigError(f"--node-config: '{key}' is required (rule: node config)")
    name = check_name(cfg["name"], "--node-config name")
    if cfg.get("dp-noise") not in (None, *NOISE_KINDS):
        raise NodeConfigError(
            f"--node-config dp-noise: must be one of {', '.join(NOISE_KINDS)} "
            "(rule: DP noise source)"
        )
    max_eps = cfg.get("max-epsilon-per-run")
    if max_eps is not None:
        if isinstance(max_eps, bool) or not isinstance(max_eps, int | float):
            raise NodeConfigError(
                "--node-config max-epsilon-per-run: must be a number (rule: node DP limits)"
            )
        if not (math.isfinite(float(max_eps)) and max_eps > 0):
            raise NodeConfigError(
                "--node-config max-epsilon-per-run: must be a finite number > 0 "
                "(rule: node DP limits)"
            )
    return NodeSpec(
        name=name,
        policy=_path(cfg, "policy-path"),  # type: ignore[arg-type]
        data=_path(cfg, "data-path"),
        keys=_path(cfg, "keys-path"),
        ledger=_path(cfg, "ledger-path"),
        max_epsilon_per_run=float(max_eps) if max_eps is not None else None,
    )


def _owner_only(path: Path, what: str) -> None:
    """A regular file (not a link, FIFO or device) that group and others cannot access."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise ConfideError(f"{path}: {what} does not exist (rule: {what})") from None
    if stat.S_ISLNK(st.st_mode):
        st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ConfideError(f"{path}: {what} is not a regular file (rule: {what})")
    if st.st_mode & 0o077:
        raise ConfideError(
            f"{path}: {what} is accessible to group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"chmod 600 it (rule: {what} permissions)"
        )


def _check_keys(node: NodeSpec) -> str:
    from confide.privacy.keys import Keyring

    assert node.keys is not None
    _owner_only(node.keys, "key file")
    keyring = Keyring.from_file(node.keys)
    return f"{node.keys}: owner-only, {len(keyring.key_ids)} key(s), active key present"


def _check_ledger(node: NodeSpec, lifetime: float) -> str:
    from confide.privacy.budget_ledger import BudgetLedger

    ledger = BudgetLedger(node.default_ledger(), node.name, lifetime)
    if not ledger.exists():
        return (
            f"{ledger.path}: no ledger yet (a node that never trained); lifetime budget "
            f"ε {lifetime:g} remaining"
        )
    ledger.check()
    spent = ledger.spent()
    remaining = max(0.0, lifetime - spent)
    verdict = f"{ledger.path}: valid, {len(ledger.runs())} run(s), ε {spent:.4g} spent of "
    verdict += f"{lifetime:g}, ε {remaining:.4g} remaining"
    if remaining <= 0:
        raise ConfideError(verdict + "; the lifetime budget is used up (rule: lifetime budget)")
    return verdict


def _check_data(node: NodeSpec, config: Mapping[str, Any]) -> str:
    """Read, schema-check, transform, rule-check and encode like training."""
    from confide.clients.preflight import check_node_data
    from confide.job import parse_job

    job = parse_job(config)
    data = check_node_data(
        node, job.task, job.dp, job.test_fraction, job.seed, lifetime_spent=0.0
    )  # the budget itself is the ledger check's line
    return (
        f"{node.data}: {data.n_rows} rows match policy {node.policy.name} and task "
        f"'{job.task.name}' (schema, transforms, rules, encoding)"
    )


def _load_certificate(path: Path):
    from cryptography import x509

    raw = read_regular_file(path, "root certificate", max_bytes=_MAX_CERT_BYTES)
    try:
        return x509.load_pem_x509_certificate(raw)
    except ValueError:
        raise ConfideError(
            f"{path}: not a PEM X.509 certificate (rule: TLS root certificate)"
        ) from None


def _check_root_certificate(path: Path, now: dt.datetime) -> str:
    from cryptography import x509

    cert = _load_certificate(path)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ConfideError(f"{path}: the certificate is not a CA (rule: TLS root certificate)")
    if now < cert.not_valid_before_utc:
        raise ConfideError(f"{path}: the certificate is not valid yet (rule: TLS root certificate)")
    if now >= cert.not_valid_after_utc:
        raise ConfideError(
            f"{path}: the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d} "
            "(rule: TLS root certificate)"
        )
    days = (cert.not_valid_after_utc - now).days
    soon = days < _EXPIRY_WARNING_DAYS
    note = f"; renew soon (under {_EXPIRY_WARNING_DAYS} days)" if soon else ""
    until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    return f"{path}: CA certificate, valid until {until} ({days} days){note}"


def _check_auth_key(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _owner_only(path, "auth key")
    raw = read_regular_file(path, "auth key", max_bytes=64 * 1024)
    try:
        key = serialization.load_ssh_private_key(raw, password=None)
    except (ValueError, TypeError, Exception):
        raise ConfideError(
            f"{path}: not an unencrypted OpenSSH private key (rule: SuperNode auth key)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfideError(f"{path}: the key is not an EC key (rule: SuperNode auth key)")
    return f"{path}: owner-only OpenSSH EC key ({key.curve.name})"


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfideError("--superlink: must be HOST:PORT (rule: SuperLink address)")
    return host, int(port)


def _check_superlink(address: str, root: Path | None, insecure: bool, timeout: float) -> str:
    host, port = _split_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConfideError(
            f"--superlink {host}:{port}: not reachable within {timeout:g} s "
            f"({type(exc).__name__}) (rule: SuperLink reachable)"
        ) from None
    with sock:
        if insecure:
            return f"{host}:{port}: TCP connection accepted (insecure: no TLS, demo only)"
        if root is None:
            raise ConfideError(
                "--superlink: TLS needs --root-certificates (rule: SuperLink over TLS)"
            )
        from cryptography.hazmat.primitives.serialization import Encoding

        pem = _load_certificate(root).public_bytes(Encoding.PEM).decode("ascii")
        context = ssl.create_default_context(cadata=pem)
        context.set_alpn_protocols(["h2"])
        sock.settimeout(timeout)
        try:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                version = tls.version()
        except ssl.SSLCertVerificationError:
            raise ConfideError(
                f"--superlink {host}:{port}: the server certificate does not verify under "
                f"{root} (rule: SuperLink over TLS)"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            raise ConfideError(
                f"--superlink {host}:{port}: TLS handshake failed ({type(exc).__name__}) "
                "(rule: SuperLink over TLS)"
            ) from None
    return f"{host}:{port}: TLS handshake verified under {root.name} ({version})"


def _run(name: str, body: Callable[[], str]) -> NodeCheck:
    try:
        return NodeCheck(name, "PASS", body())
    except ConfideError as exc:
        return NodeCheck(name, "FAIL", str(exc))
    except Exception as exc:
        from confide.privacy.errors import PrivacyError

        if isinstance(exc, PrivacyError):
            return NodeCheck(name, "FAIL", str(exc))
        return NodeCheck(name, "FAIL", f"unexpected {type(exc).__name__} (rule: {name})")


def run_checks(
    node_config: str,
    config: Mapping[str, Any],
    *,
    superlink: str | None = None,
    root_certificates: Path | None = None,
    auth_key: Path | None = None,
    insecure: bool = False,
    timeout: float = 3.0,
    now: dt.datetime | None = None,
) -> list[NodeCheck]:
    """Run every check of a node's own configuration; nothing is written."""
    now = now or dt.datetime.now(dt.UTC)
    checks: list[NodeCheck] = []
    node: NodeSpec | None = None

    def node_config_line() -> str:
        nonlocal node
        node = _node_spec(parse_node_config(node_config))
        return f"node '{node.name}': keys known, name safe, limits finite"

    checks.append(_run("node-config", node_config_line))
    if node is None:
        checks += [
            NodeCheck(n, "SKIP", "needs a valid --node-config")
            for n in ("policy", "data", "keys", "ledger")
        ]
    else:
        spec = node

        lifetime: list[float] = []

        def policy_line() -> str:
            from confide.privacy.policy import load_policy

            policy = load_policy(spec.policy)
            lifetime.append(float(policy.dp.lifetime_epsilon))
            return f"{spec.policy}: valid, {len(policy.columns)} column rule(s)"

        checks.append(_run("policy", policy_line))
        checks.append(_run("data", lambda: _check_data(spec, config)))
        if spec.keys is None:
            checks.append(NodeCheck("keys", "SKIP", "no keys-path (the policy needs no key)"))
        else:
            checks.append(_run("keys", lambda: _check_keys(spec)))
        if lifetime:
            checks.append(_run("ledger", lambda: _check_ledger(spec, lifetime[0])))
        else:
            checks.append(NodeCheck("ledger", "SKIP", "needs the policy's lifetime budget"))
    if root_certificates is None:
        verdict = "SKIP" if insecure else "FAIL"
        detail = (
            "insecure: no TLS (demo only)"
            if insecure
            else "no --root-certificates: TLS is on by default (rule: SuperLink over TLS)"
        )
        checks.append(NodeCheck("tls-root", verdict, detail))
    else:
        checks.append(_run("tls-root", lambda: _check_root_certificate(root_certificates, now)))
    if auth_key is None:
        checks.append(NodeCheck("auth-key", "SKIP", "no --auth-supernode-private-key"))
    else:
        checks.append(_run("auth-key", lambda: _check_auth_key(auth_key)))
    if superlink is None:
        checks.append(NodeCheck("superlink", "SKIP", "no --superlink given"))
    else:
        checks.append(
            _run(
                "superlink",
                lambda: _check_superlink(superlink, root_certificates, insecure, timeout),
            )
        )
    return checks


def register_node_commands(app: Any) -> None:
    """Add ``confide node check`` to the command line."""
    import typer

    node_app = typer.Typer(
        help="A partner's own node: checks before joining.", no_args_is_help=True
    )

    @node_app.command("check")
    def check(
        node_config: str = typer.Option(
            ...,
            "--node-config",
            help="The SuperNode's --node-config string (name, data-path, ...).",
        ),
        superlink: str | None = typer.Option(None, "--superlink", help="SuperLink HOST:PORT."),
        root_certificates: Path | None = typer.Option(
            None, "--root-certificates", help="CA certificate the SuperLink's TLS chains to."
        ),
        auth_key: Path | None = typer.Option(
            None, "--auth-supernode-private-key", help="The node's authentication key."
        ),
        insecure: bool = typer.Option(False, "--insecure", help="No TLS (local demo only)."),
        timeout: float = typer.Option(3.0, "--timeout", help="Seconds for the SuperLink check."),
        overrides: list[str] | None = typer.Argument(
            None, help="Hydra overrides for the shared task, e.g. task=propensity"
        ),
        config_dir: list[Path] | None = typer.Option(
            None, "--config-dir", help="A folder of your own configs, added to Hydra's path."
        ),
    ) -> None:
        """Check this node's own configuration before it joins; exit 1 on any FAIL."""
        from confide.config import compose_config, to_container

        config = to_container(compose_config(overrides or [], config_dir or []))
        checks = run_checks(
            node_config,
            config,
            superlink=superlink,
            root_certificates=root_certificates,
            auth_key=auth_key,
            insecure=insecure,
            timeout=timeout,
        )
        for item in checks:
            typer.echo(format_check(item))
        failed = [c.name for c in checks if c.verdict == "FAIL"]
        typer.echo(f"node check: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}")
        if failed:
            raise typer.Exit(1)

    app.add_typer(node_app, name="node")
