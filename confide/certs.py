"""Certificates and keys for trying a deployment locally: a CA, a SuperLink TLS certificate and
SuperNode authentication keys (``confide certs ...``).

Everything is made with ``cryptography``. Private keys are written with owner-only permissions
and never printed. These files are for local trials: a real federation gets its SuperLink
certificate from the coordinator's own CA and each organisation keeps its node key to itself.

Files written by :func:`init_certificates` in ``out_dir``::

    ca.crt, ca.key                 the trial certificate authority
    superlink.crt, superlink.key   the SuperLink's TLS certificate (SANs: the given hosts)
    <node>_auth, <node>_auth.pub   a SuperNode's authentication key pair (OpenSSH, EC P-384),
                                   registered at the SuperLink with ``flwr supernode register``
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from confide.modeling.errors import ConfideError

__all__ = [
    "CertError",
    "TrialCertificates",
    "create_ca",
    "create_node_auth_keys",
    "create_server_certificate",
    "init_certificates",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


class CertError(ConfideError):
    """A certificate or key could not be created (bad name, existing file, unreadable CA)."""


@dataclass(frozen=True)
class TrialCertificates:
    """Paths of the files :func:`init_certificates` wrote."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    node_keys: dict[str, tuple[Path, Path]]  # node -> (private key, public key)


def _write(path: Path, data: bytes, private: bool, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise CertError(f"{path}: file exists; pass --force to replace it (rule: certs)")
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600 if private else 0o644)
    return path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _validity(days: int) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    return now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)


def create_ca(out_dir: Path, days: int = 365, overwrite: bool = False) -> tuple[Path, Path]:
    """A self-signed trial CA: ``ca.crt`` and ``ca.key`` (owner-only)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Confide trial"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Confide trial CA"),
        ]
    )
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA384())
    )
    cert_path = _write(
        out_dir / "ca.crt", cert.public_bytes(serialization.Encoding.PEM), False, overwrite
    )
    key_path = _write(out_dir / "ca.key", _pem_key(key), True, overwrite)
    return cert_path, key_path


def _load_ca(ca_cert: Path, ca_key: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertError(
            f"{ca_cert}: cannot read the CA certificate or its key (rule: certs)"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertError(f"{ca_key}: the CA key must be an EC key (rule: certs)")
    return cert, key


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
                raise CertError(
                    f"'{host}' is not an IP address or host name (rule: certs)"
                ) from None
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def create_server_certificate(
    out_dir: Path,
    ca_cert: Path,
    ca_key: Path,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """The SuperLink's TLS certificate signed by the CA: ``superlink.crt``, ``superlink.key``."""
    if not hosts:
        raise CertError("the SuperLink certificate needs at least one host (rule: certs)")
    ca, signer = _load_ca(ca_cert, ca_key)
    key = ec.generate_private_key(ec.SECP384R1())
    start, end = _validity(days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
        .sign(signer, hashes.SHA384())
    )
    cert_path = _write(
        out_dir / "superlink.crt", cert.public_bytes(serialization.Encoding.PEM), False, overwrite
    )
    key_path = _write(out_dir / "superlink.key", _pem_key(key), True, overwrite)
    return cert_path, key_path


def create_node_auth_keys(out_dir: Path, node: str, overwrite: bool = False) -> tuple[Path, Path]:
    """A SuperNode's authentication key pair (OpenSSH, EC P-384): ``<node>_auth`` (private,
    for ``flower-supernode --auth-supernode-private-key``) and ``<node>_auth.pub`` (for
    ``flwr supernode register``)."""
    if not _NAME_RE.fullmatch(node):
        raise CertError(f"node name '{node}' must be letters, digits, '-' or '_' (rule: certs)")
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private_path = _write(out_dir / f"{node}_auth", private, True, overwrite)
    public_path = _write(out_dir / f"{node}_auth.pub", public + b"\n", False, overwrite)
    return private_path, public_path


def init_certificates(
    out_dir: Path,
    nodes: Sequence[str] = (),
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    overwrite: bool = False,
) -> TrialCertificates:
    """CA, SuperLink certificate and one authentication key pair per node, in ``out_dir``."""
    out_dir = Path(out_dir)
    ca_cert, ca_key = create_ca(out_dir, days, overwrite)
    server_cert, server_key = create_server_certificate(
        out_dir, ca_cert, ca_key, hosts, days, overwrite
    )
    node_keys = {n: create_node_auth_keys(out_dir, n, overwrite) for n in nodes}
    return TrialCertificates(ca_cert, ca_key, server_cert, server_key, node_keys)
