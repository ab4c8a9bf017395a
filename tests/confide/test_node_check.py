"""`confide node check`: one line per check, PASS/FAIL/SKIP, exit 1 on any failure, nothing
written. Reachability is tested against a local TLS listener on 127.0.0.1 and a closed port."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from confide.certs import init_certificates
from confide.cli import app
from confide.config import compose_config, to_container
from confide.node_check import format_check, run_checks
from tests.byo_data import write_user_federation


@pytest.fixture(scope="module")
def org(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("node-check")
    write_user_federation(root / "org", {"shop_a": 300})
    init_certificates(root / "certs", nodes=["shop_a"])
    other = init_certificates(root / "other-ca")  # a CA the SuperLink does not chain to
    assert other.ca_cert.exists()
    return root


@pytest.fixture(scope="module")
def config() -> dict:
    return to_container(compose_config([]))


def _node_config(org: Path, **changes: str) -> str:
    shop = org / "org" / "shop_a"
    values = {
        "name": "shop_a",
        "data-path": str(shop / "customers.csv"),
        "policy-path": str(shop / "policy.yaml"),
        "keys-path": str(shop / "keys.json"),
        "ledger-path": str(shop / "ledger.json"),
        **changes,
    }
    return " ".join(f'{k}="{v}"' for k, v in values.items())


@pytest.fixture
def tls_superlink(org):
    """A TLS listener on 127.0.0.1 with the SuperLink certificate; yields its address."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(org / "certs" / "superlink.crt", org / "certs" / "superlink.key")
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed once the socket is released


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _verdicts(checks) -> dict[str, str]:
    return {c.name: c.verdict for c in checks}


def test_a_ready_node_passes_every_check_and_writes_nothing(org, config, tls_superlink):
    before = _tree(org)
    checks = run_checks(
        _node_config(org),
        config,
        superlink=tls_superlink,
        root_certificates=org / "certs" / "ca.crt",
        auth_key=org / "certs" / "shop_a_auth",
    )
    assert _verdicts(checks) == {
        "node-config": "PASS",
        "policy": "PASS",
        "data": "PASS",
        "keys": "PASS",
        "ledger": "PASS",
        "tls-root": "PASS",
        "auth-key": "PASS",
        "superlink": "PASS",
    }
    assert "TLS handshake verified under ca.crt" in checks[-1].detail
    assert all("\n" not in format_check(c) for c in checks)
    assert _tree(org) == before


def test_cli_exit_code_one_line_per_check(org, tls_superlink):
    runner = CliRunner()
    args = ["node", "check", "--node-config", _node_config(org)]
    tls = ["--root-certificates", str(org / "certs" / "ca.crt"), "--superlink"]
    ok = runner.invoke(app, [*args, *tls, tls_superlink])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[-1] == "node check: PASS"
    bad = runner.invoke(app, [*args, *tls, _closed_port()])
    assert bad.exit_code == 1
    lines = bad.output.splitlines()
    assert len(lines) == 9 and lines[-1] == "node check: FAIL (superlink)"
    assert lines[7].startswith("FAIL  superlink") and "(rule: SuperLink reachable)" in lines[7]


def test_superlink_closed_port_and_foreign_ca_fail(org, config, tls_superlink):
    closed = run_checks(
        _node_config(org),
        config,
        superlink=_closed_port(),
        root_certificates=org / "certs" / "ca.crt",
        timeout=2,
    )
    assert closed[-1].verdict == "FAIL" and "not reachable" in closed[-1].detail
    foreign = run_checks(
        _node_config(org),
        config,
        superlink=tls_superlink,
        root_certificates=org / "other-ca" / "ca.crt",
    )
    assert foreign[-1].verdict == "FAIL"
    assert "does not verify under" in foreign[-1].detail


def test_each_broken_part_fails_its_own_line(org, config, tmp_path):
    shop = org / "org" / "shop_a"
    loose_keys = tmp_path / "keys.json"
    loose_keys.write_bytes((shop / "keys.json").read_bytes())
    os.chmod(loose_keys, 0o644)
    bad_ledger = tmp_path / "ledger.json"
    bad_ledger.write_text(json.dumps({"version": 1, "node": "shop_a", "runs": "x"}))
    extra = tmp_path / "customers.csv"
    text = (shop / "customers.csv").read_text(encoding="utf-8").splitlines()
    extra.write_text(
        "\n".join([text[0] + ",loyalty"] + [t + ",x" for t in text[1:]]) + "\n", encoding="utf-8"
    )
    loose_auth = tmp_path / "auth"
    loose_auth.write_bytes((org / "certs" / "shop_a_auth").read_bytes())
    os.chmod(loose_auth, 0o644)
    checks = run_checks(
        _node_config(org, **{"keys-path": str(loose_keys), "ledger-path": str(bad_ledger)}),
        config,
        root_certificates=org / "certs" / "superlink.key",  # not a certificate
        auth_key=loose_auth,
    )
    verdicts = _verdicts(checks)
    assert verdicts == {
        "node-config": "PASS",
        "policy": "PASS",
        "data": "FAIL",  # the data check reads the key file too
        "keys": "FAIL",
        "ledger": "FAIL",
        "tls-root": "FAIL",
        "auth-key": "FAIL",
        "superlink": "SKIP",
    }
    detail = {c.name: c.detail for c in checks}
    assert "chmod 600" in detail["keys"] and "(rule: key file permissions)" in detail["keys"]
    assert "not a PEM X.509 certificate" in detail["tls-root"]
    assert "(rule: auth key permissions)" in detail["auth-key"]
    data_only = run_checks(_node_config(org, **{"data-path": str(extra)}), config)
    assert (
        _verdicts(data_only)["data"] == "FAIL"
        and "loyalty" in {c.name: c.detail for c in data_only}["data"]
    )


def test_expired_root_certificate_fails(org, config):
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    checks = run_checks(
        _node_config(org), config, root_certificates=org / "certs" / "ca.crt", now=later
    )
    line = {c.name: c for c in checks}["tls-root"]
    assert line.verdict == "FAIL" and "the certificate expired on" in line.detail


def test_bad_node_config_fails_without_echoing_values(org, config):
    checks = run_checks(_node_config(org, name="shop a/../Zq7MARKER"), config)
    first = checks[0]
    assert first.verdict == "FAIL" and "(rule: safe names)" in first.detail
    assert "Zq7MARKER" not in first.detail
    assert [c.verdict for c in checks[1:5]] == ["SKIP"] * 4
    unknown = run_checks(_node_config(org) + ' data-pth="x"', config)
    assert unknown[0].verdict == "FAIL" and "unknown key(s) ['data-pth']" in unknown[0].detail
