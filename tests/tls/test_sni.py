"""tls_server_sni_maps in the TLS engine: the chain an SNI name selects,
parent-domain entries, and what is noted for names without one."""

from __future__ import annotations

import pytest
from trustme import KeyType

from mailsys.tls import TlsEngine, client_context, established_text, server_context, sni_note_text
from mailsys.tls_match import certificate_names
from tls_helpers import pump


@pytest.fixture
def sni_pem(ca):
    """PEM of an RSA and an ECDSA chain for sni.example and *.sni.example."""
    chains = [ca.issue_cert("sni.example", "*.sni.example", key_type=kind)
              .private_key_and_cert_chain_pem.bytes() for kind in (KeyType.RSA, KeyType.ECDSA)]
    return b"\n".join(chains)


def sessions(cfg, entries, hostname):
    lookups = []

    def lookup(key):
        lookups.append(key)
        return entries.get(key)
    server = TlsEngine(server_context(cfg, sni=lookup), server_side=True)
    client = TlsEngine(client_context(cfg, "may"), server_side=False, server_hostname=hostname,
                       sni=hostname)
    pump(client, server)
    return client, server, lookups


def test_the_sni_name_selects_its_chain(tls_cfg, sni_pem):
    client, server, lookups = sessions(tls_cfg, {"sni.example": sni_pem}, "sni.example")
    assert lookups == ["sni.example"]
    assert certificate_names(client.peer_certificate) == ["sni.example", "*.sni.example"]
    assert server.sni == "sni.example" and sni_note_text(server, "c[192.0.2.1]") is None
    assert established_text(server, "c[192.0.2.1]").startswith(
        "Anonymous TLS connection established from c[192.0.2.1] to sni.example: TLSv1.3 ")


def test_parent_domain_entries_with_a_leading_dot(tls_cfg, sni_pem):
    client, server, lookups = sessions(tls_cfg, {".sni.example": sni_pem}, "A.Mx.sni.example")
    assert lookups == ["a.mx.sni.example", ".mx.sni.example", ".sni.example"]
    assert server.sni == "A.Mx.sni.example"
    assert "sni.example" in certificate_names(client.peer_certificate)


def test_an_unmatched_name_gets_the_default_chain(tls_cfg, sni_pem):
    client, server, lookups = sessions(tls_cfg, {"sni.example": sni_pem}, "other.test")
    assert lookups == ["other.test", ".test"]
    assert "mx.example.test" in certificate_names(client.peer_certificate)
    assert server.sni is None
    assert sni_note_text(server, "c[192.0.2.1]") == (
        "info", "TLS SNI other.test from c[192.0.2.1] not matched, using default chain")
    assert established_text(server, "c[192.0.2.1]").startswith(
        "Anonymous TLS connection established from c[192.0.2.1]: ")


def test_an_invalid_name_is_noted_and_not_looked_up(tls_cfg, sni_pem):
    lookups = []
    server = TlsEngine(server_context(tls_cfg, sni=lambda k: lookups.append(k)),
                       server_side=True)
    client = TlsEngine(client_context(tls_cfg, "may"), server_side=False)
    client.connection.set_tlsext_host_name(b"bad_name!")
    pump(client, server)
    assert lookups == []
    assert sni_note_text(server, "c[192.0.2.1]") == (
        "warning", "TLS SNI from c[192.0.2.1] is invalid: bad_name!")


def test_no_sni_looks_nothing_up(tls_cfg, sni_pem):
    lookups = []
    server = TlsEngine(server_context(tls_cfg, sni=lambda k: lookups.append(k)), server_side=True)
    client = TlsEngine(client_context(tls_cfg, "may"), server_side=False,
                       server_hostname="sni.example")          # a name, but no SNI asked for
    pump(client, server)
    assert lookups == [] and server.sni is None and server.sni_note is None


def test_an_entry_without_a_key_is_noted(tls_cfg, ca):
    cert_only = ca.issue_cert("sni.example").cert_chain_pems[0].bytes()
    client, server, _ = sessions(tls_cfg, {"sni.example": cert_only}, "sni.example")
    assert "mx.example.test" in certificate_names(client.peer_certificate)
    level, text = sni_note_text(server, "c[192.0.2.1]")
    assert level == "warning" and text.startswith("TLS SNI sni.example: ")
