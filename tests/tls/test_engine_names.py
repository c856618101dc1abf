"""Which failure verify_failure() names when the certificate's names are wrong too.

As a live Postfix 3.7.11 client logged it (OpenSSL's order: chain, then
names, then dates): a certificate from an unknown CA is an "untrusted
issuer" whatever its names; an expired one with the wrong names is a
name mismatch, and "certificate has expired" only when the names fit.
"""

from __future__ import annotations

import datetime

import pytest

from mailsys.tls import TlsEngine, client_context, peer_status, server_context, verify_failure
from tls_helpers import pump

NOW = datetime.datetime.now(datetime.timezone.utc)


def client_after_handshake(cfg, names):
    server = TlsEngine(server_context(cfg), server_side=True)
    client = TlsEngine(client_context(cfg, "verify"), server_side=False,
                       server_hostname="127.0.0.1", match_names=names)
    pump(client, server)
    return client


@pytest.mark.parametrize("names, reason", [
    (("127.0.0.1",), "num=64:IP address mismatch"),
    (("other.example.test",), "num=62:hostname mismatch"),
    (("other.example.test", "127.0.0.9"), "num=62:hostname mismatch"),
    (("mx.example.test", "127.0.0.9"), "num=64:IP address mismatch"),
    (("mx.example.test",), "certificate has expired"),
])
def test_names_come_before_dates(make_cfg, ca, tmp_path, names, reason):
    leaf = ca.issue_cert("mx.example.test", not_before=NOW - datetime.timedelta(days=10),
                         not_after=NOW - datetime.timedelta(days=1))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "expired.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "expired.pem", smtp_tls_CAfile=tmp_path / "ca.pem")
    client = client_after_handshake(cfg, names)
    assert verify_failure(client, "x") == f"server certificate verification failed for x: {reason}"
    assert peer_status(client) == "Untrusted"


def test_an_unknown_ca_comes_before_the_names(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["other_ca"])
    client = client_after_handshake(cfg, ("other.example.test", "127.0.0.9"))
    assert verify_failure(client, "x").startswith(
        "certificate verification failed for x: untrusted issuer /O=trustme")


def test_a_second_address_is_refused_and_the_first_one_checked(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["ca"])
    client = client_after_handshake(cfg, ("127.0.0.1", "127.0.0.2"))
    assert client.refused_names == ("127.0.0.2",)
    assert verify_failure(client, "x") is None and peer_status(client) == "Verified"
