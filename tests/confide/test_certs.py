"""`confide certs`: a CA, a SuperLink certificate for the given hosts, node auth keys."""

from __future__ import annotations

import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.cli.supernode.register import try_load_public_key

from confide.certs import CertError, create_node_auth_keys, init_certificates


def test_init_writes_a_ca_signed_server_certificate_and_private_keys(tmp_path):
    made = init_certificates(tmp_path, ["shop_a"], ["127.0.0.1", "localhost"])
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(made.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for private in (made.ca_key, made.server_key, made.node_keys["shop_a"][0]):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_node_keys_are_what_flower_supernode_auth_accepts(tmp_path):
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    private, public = create_node_auth_keys(tmp_path, "shop_b")
    key = load_ssh_private_key(private.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert try_load_public_key(public)  # the check `flwr supernode register` applies


def test_refuses_to_overwrite_and_bad_names(tmp_path):
    init_certificates(tmp_path)
    with pytest.raises(CertError, match="file exists"):
        init_certificates(tmp_path)
    init_certificates(tmp_path, overwrite=True)
    with pytest.raises(CertError, match="node name"):
        create_node_auth_keys(tmp_path, "../evil")
