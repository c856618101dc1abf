"""TlsEngine purely in memory: two engines, bytes shuttled by the test."""

from __future__ import annotations

import os
import re

import pytest

from mailsys.message.received import received_smtp
from mailsys.tls import (TlsEngine, TlsError, client_context, describe, established_text,
                         peer_status, server_context, summary, verify_failure)
from tls_helpers import handshake_error, pump


def pair(cfg, level="may", hostname="mx.example.test", *, step=None):
    server = TlsEngine(server_context(cfg), server_side=True)
    client = TlsEngine(client_context(cfg, level), server_side=False, server_hostname=hostname)
    pump(client, server, step=step)
    return client, server


def transfer(sender: TlsEngine, receiver: TlsEngine, data: bytes) -> bytes:
    """Encrypt on one side, decrypt on the other in uneven pieces; return the plaintext."""
    wire = sender.encrypt(data)
    got = []
    sizes = [1, 7, 1000, 16389, 65536]
    pos = i = 0
    while pos < len(wire):
        piece = wire[pos:pos + sizes[i % len(sizes)]]
        pos += len(piece)
        i += 1
        plain, out = receiver.decrypt(piece)
        assert out == b""
        got.append(plain)
    return b"".join(got)


@pytest.mark.parametrize("step", [None, 1, 100])
def test_handshake_and_data_both_ways(tls_cfg, step):
    client, server = pair(tls_cfg, step=step)
    assert client.handshake_done and server.handshake_done
    assert transfer(client, server, b"EHLO client.example.test\r\n") == b"EHLO client.example.test\r\n"
    assert transfer(server, client, b"250-mx.example.test\r\n250 CHUNKING\r\n") == \
        b"250-mx.example.test\r\n250 CHUNKING\r\n"


def test_large_payloads(tls_cfg):
    client, server = pair(tls_cfg)
    up = os.urandom(3 * 1024 * 1024 + 17)
    down = os.urandom(1024 * 1024 + 5)
    assert transfer(client, server, up) == up
    assert transfer(server, client, down) == down


def test_decrypt_with_nothing_yields_nothing(tls_cfg):
    client, server = pair(tls_cfg)
    assert server.decrypt(b"") == (b"", b"")
    assert not server.peer_closed


def test_close_notify_reaches_the_peer(tls_cfg):
    client, server = pair(tls_cfg)
    wire = client.encrypt(b"QUIT\r\n") + client.close_notify()
    assert client.close_sent
    plain, _ = server.decrypt(wire)
    assert plain == b"QUIT\r\n"
    assert server.peer_closed
    assert client.close_notify() == b""          # only once
    # TLSv1.3 closes one direction only: the server may still answer.
    assert transfer(server, client, b"221 2.0.0 Bye\r\n") == b"221 2.0.0 Bye\r\n"
    plain, _ = client.decrypt(server.close_notify())
    assert plain == b"" and client.peer_closed


def test_encrypt_before_handshake_is_refused(tls_cfg):
    client = TlsEngine(client_context(tls_cfg, "may"), server_side=False)
    with pytest.raises(TlsError, match="handshake not done"):
        client.encrypt(b"x")


def test_plaintext_instead_of_hello_is_a_handshake_error(tls_cfg):
    # A client that pipelined commands after STARTTLS and they reached the engine.
    server = TlsEngine(server_context(tls_cfg), server_side=True)
    with pytest.raises(TlsError) as e:
        server.handshake_step(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n")
    assert e.value.kind == "handshake"
    assert e.value.reason


def test_corrupted_record_breaks_the_session(tls_cfg):
    client, server = pair(tls_cfg)
    wire = bytearray(client.encrypt(b"DATA\r\n"))
    wire[-3] ^= 0xFF
    with pytest.raises(TlsError) as e:
        server.decrypt(bytes(wire))
    assert e.value.kind == "handshake"
    assert e.value.outgoing          # the alert for the peer


def test_context_and_side_must_agree(tls_cfg):
    with pytest.raises(ValueError):
        TlsEngine(server_context(tls_cfg), server_side=False)
    with pytest.raises(TypeError):
        from OpenSSL import SSL
        TlsEngine(SSL.Context(SSL.TLS_METHOD), server_side=True)


# -- verification levels ------------------------------------------------------------


def test_secure_with_the_right_ca_is_verified(tls_cfg):
    client, server = pair(tls_cfg, "secure", "mx.example.test")
    assert peer_status(client) == "Verified"
    assert describe(client).peer_verified


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost"])
def test_verify_matches_names_and_addresses(tls_cfg, address):
    client, _ = pair(tls_cfg, "verify", address)
    assert peer_status(client) == "Verified"


def test_secure_with_the_wrong_hostname_says_why(tls_cfg):
    # As Postfix, the handshake completes; the level decides afterwards.
    client, _ = pair(tls_cfg, "secure", "wrong.example.test")
    assert peer_status(client) == "Untrusted"
    assert verify_failure(client, "wrong.example.test[192.0.2.1]:25") == (
        "server certificate verification failed for wrong.example.test[192.0.2.1]:25: "
        "num=62:hostname mismatch")


@pytest.mark.parametrize("hostname, ok", [("mx1.example.test", True), ("a.mx1.example.test", False),
                                          ("example.test", False)])
def test_wildcards_cover_one_label(make_cfg, pki, ca, tmp_path, hostname, ok):
    leaf = ca.issue_cert("*.example.test")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "wild.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "wild.pem", smtp_tls_CAfile=pki["ca"])
    server = TlsEngine(server_context(cfg), server_side=True)
    client = TlsEngine(client_context(cfg, "secure"), server_side=False, server_hostname=hostname)
    pump(client, server)
    if ok:
        assert peer_status(client) == "Verified"
    else:
        assert verify_failure(client, "x").endswith(": num=62:hostname mismatch")


def test_secure_with_an_unknown_ca_fails_clearly(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["other_ca"])
    server = TlsEngine(server_context(cfg), server_side=True)
    client = TlsEngine(client_context(cfg, "secure"), server_side=False, server_hostname="mx.example.test")
    pump(client, server)
    assert re.fullmatch(r"certificate verification failed for x: untrusted issuer /O=trustme.*",
                        verify_failure(client, "x"))


@pytest.mark.parametrize("level", ["may", "encrypt", "none", "", "dane"])
def test_opportunistic_levels_encrypt_with_an_unknown_ca(make_cfg, pki, level):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["other_ca"])
    client, server = pair(cfg, level, "wrong.example.test")
    assert peer_status(client) == "Untrusted"
    assert not describe(client).peer_verified
    assert transfer(client, server, b"secret") == b"secret"


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_opportunistic_levels_say_trusted_for_a_known_ca(tls_cfg, level):
    # The chain verifies but no name was required: Postfix says "Trusted".
    client, _ = pair(tls_cfg, level, "any.name.test")
    assert peer_status(client) == "Trusted"


def test_verify_needs_a_hostname(tls_cfg):
    with pytest.raises(ValueError):
        TlsEngine(client_context(tls_cfg, "verify"), server_side=False)


# -- describe() and the log / Received texts ---------------------------------------------


def test_describe_tls13(tls_cfg):
    client, server = pair(tls_cfg)
    for side in (client, server):
        info = describe(side)
        assert info.protocol == "TLSv1.3"
        assert info.cipher.startswith("TLS_")
        assert info.usebits in (128, 256) and info.algbits == info.usebits
        assert info.details.startswith("key-exchange ")
        assert "server-signature ECDSA (prime256v1) server-digest SHA256" in info.details
        assert "client-signature" not in info.details
    assert describe(client).cipher == describe(server).cipher
    assert describe(client).peer_cn == "mx.example.test"
    assert describe(client).issuer_cn.startswith("trustme")   # the CA has no CN: its O
    assert describe(server).peer_cn == "" and not describe(server).ask_ccert


def test_describe_tls12_rsa(make_cfg, pki, ca, tmp_path):
    from trustme import KeyType
    leaf = ca.issue_cert("mx.example.test", key_type=KeyType.RSA)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "rsa.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "rsa.pem", smtpd_tls_protocols="<=TLSv1.2",
                   smtp_tls_CAfile=pki["ca"])
    client, server = pair(cfg)
    info = describe(server)
    assert info.protocol == "TLSv1.2"
    assert re.fullmatch(r"ECDHE-RSA-AES(128|256)-GCM-SHA(256|384)|ECDHE-RSA-CHACHA20-POLY1305", info.cipher)
    assert info.details == ""       # Postfix logs the details for TLSv1.3 only


def test_rsa_signature_under_tls13(make_cfg, pki, ca, tmp_path):
    from trustme import KeyType
    leaf = ca.issue_cert("mx.example.test", key_type=KeyType.RSA)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "rsa.pem"))
    cfg = make_cfg(smtpd_tls_cert_file=tmp_path / "rsa.pem", smtp_tls_CAfile=pki["ca"])
    _, server = pair(cfg)
    assert "server-signature RSA-PSS (2048 bits) server-digest SHA256" in describe(server).details


def test_log_lines_have_postfix_shape(tls_cfg):
    client, server = pair(tls_cfg, "may")
    assert re.fullmatch(
        r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]: "
        r"TLSv1\.3 with cipher TLS_\w+ \((128|256)/\1 bits\) "
        r"key-exchange \S+ server-signature ECDSA \(prime256v1\) server-digest SHA256",
        established_text(server, "localhost[127.0.0.1]"))
    assert established_text(client, "mx.example.test[192.0.2.1]:25").startswith(
        "Trusted TLS connection established to mx.example.test[192.0.2.1]:25: TLSv1.3 with cipher ")
    secure, _ = pair(tls_cfg, "secure")
    assert established_text(secure, "mx[192.0.2.1]:25").startswith("Verified TLS connection established to ")


def test_summary_is_the_received_header_text(tls_cfg):
    _, server = pair(tls_cfg)
    info = describe(server)
    header = received_smtp(helo="client.example.test", client_name="localhost", client_addr="127.0.0.1",
                           myhostname="mx.example.test", protocol="ESMTPS", queue_id="4F2A1C3B7D",
                           recipients=["b@example.test"], arrival=0.0, tls=info)
    first = f"\t(using {info.protocol} with cipher {info.cipher} ({info.usebits}/{info.algbits} bits)"
    assert first in header
    assert "\t(No client certificate requested)" in header
    assert summary(info).startswith(first[len("\t(using "):])


def test_client_certificate_when_asked(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_ask_ccert="yes",
                   smtpd_tls_CAfile=pki["ca"], smtp_tls_CAfile=pki["ca"], smtp_tls_cert_file=pki["client"])
    client, server = pair(cfg)
    info = describe(server)
    assert info.ask_ccert
    assert info.peer_cn == "client.example.test"
    assert info.issuer_cn.startswith("trustme")
    assert info.peer_verified
    assert peer_status(server) == "Trusted"
    assert established_text(server, "c[192.0.2.7]").startswith(
        "Trusted TLS connection established from c[192.0.2.7]: ")
    # Postfix: "... server-digest SHA256 client-signature ECDSA (prime256v1) client-digest SHA256"
    assert info.details.endswith(
        "server-signature ECDSA (prime256v1) server-digest SHA256"
        " client-signature ECDSA (prime256v1) client-digest SHA256")


@pytest.mark.parametrize("group, logged", [
    ("x25519", "X25519"), ("x448", "X448"), ("secp256r1", "ECDHE (prime256v1)"),
    ("secp384r1", "ECDHE (secp384r1)"), ("secp521r1", "ECDHE (secp521r1)"),
    ("ffdhe2048", "DHE (2048 bits)"), ("X25519MLKEM768", "X25519MLKEM768")])
def test_key_exchange_is_named_as_postfix_logs_it(group, logged):
    from mailsys.tls import _key_exchange
    assert _key_exchange(group) == logged


def test_client_certificate_from_an_unknown_ca_is_recorded_not_refused(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_ask_ccert="yes",
                   smtpd_tls_CAfile=pki["other_ca"], smtp_tls_CAfile=pki["ca"],
                   smtp_tls_cert_file=pki["client"])
    _, server = pair(cfg)
    assert describe(server).peer_cn == "client.example.test"
    assert not describe(server).peer_verified
    assert peer_status(server) == "Untrusted"


def test_asked_but_no_client_certificate(make_cfg, pki):
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtpd_tls_ask_ccert="yes",
                   smtpd_tls_CAfile=pki["ca"], smtp_tls_CAfile=pki["ca"])
    _, server = pair(cfg)
    info = describe(server)
    assert info.ask_ccert and info.peer_cn == ""
    assert peer_status(server) == "Anonymous"
    header = received_smtp(helo="c", client_name="c", client_addr="192.0.2.7", myhostname="mx",
                           protocol="ESMTPS", queue_id="Q", recipients=["b@x"], arrival=0.0, tls=info)
    assert "\t(Client did not present a certificate)" in header


@pytest.mark.parametrize("protocols", [">=TLSv1.3", "<=TLSv1.2"])
def test_session_resumption(make_cfg, pki, protocols):
    # One server context per process: its cache and ticket keys resume sessions.
    cfg = make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["ca"],
                   smtpd_tls_protocols=protocols)
    sctx, cctx = server_context(cfg), client_context(cfg, "secure")
    server = TlsEngine(sctx, server_side=True)
    client = TlsEngine(cctx, server_side=False, server_hostname="mx.example.test")
    pump(client, server)
    assert not client.session_reused
    assert transfer(server, client, b"220 ok\r\n") == b"220 ok\r\n"   # TLSv1.3 tickets arrive here
    session = client.session
    assert session is not None

    server2 = TlsEngine(sctx, server_side=True)
    client2 = TlsEngine(cctx, server_side=False, server_hostname="mx.example.test", session=session)
    pump(client2, server2)
    assert client2.session_reused and server2.session_reused
    assert established_text(server2, "c[192.0.2.7]").startswith("Anonymous TLS connection reused from ")
    assert established_text(client2, "mx[192.0.2.1]:25").startswith("Verified TLS connection reused to ")
    assert transfer(client2, server2, b"EHLO again\r\n") == b"EHLO again\r\n"


def test_describe_needs_a_finished_handshake(tls_cfg):
    with pytest.raises(TlsError):
        describe(TlsEngine(server_context(tls_cfg), server_side=True))


def test_data_in_the_same_flight_as_the_clients_finished(tls_cfg):
    # A client may write its first command right behind its Finished message.
    server = TlsEngine(server_context(tls_cfg), server_side=True)
    client = TlsEngine(client_context(tls_cfg, "may"), server_side=False)
    hello, _ = client.handshake_step(b"")
    flight, _ = server.handshake_step(hello)
    finished, done = client.handshake_step(flight)
    assert done
    out, done = server.handshake_step(finished + client.encrypt(b"EHLO c\r\n"))
    assert done
    assert server.decrypt(b"") == (b"EHLO c\r\n", b"")
