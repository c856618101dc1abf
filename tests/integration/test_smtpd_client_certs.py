"""Client certificates in smtpd's restrictions and policy requests, through
a real master with trustme certificates: permit_tls_clientcerts with
relay_clientcerts, check_ccert_access, and the ccert_*/encryption_*
attributes Postfix sends a policy service."""

from __future__ import annotations

import hashlib
import runpy
import smtplib
import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))

REJECT = "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: "


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


@pytest.fixture
def pki(tmp_path):
    ca = trustme.CA()
    pem, cafile = tmp_path / "cert.pem", tmp_path / "ca.pem"
    ca.issue_cert("mx.example.test").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(cafile))
    client = ca.issue_cert("client.example", common_name="client.example")
    cert = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes())
    return SimpleNamespace(ca=ca, pem=pem, cafile=cafile, client=client, cert=cert)


def fingerprint(blob: bytes) -> str:
    """Postfix's form of a sha256 fingerprint: "AB:CD:..."."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(blob).digest())


def cert_print(pki) -> str:
    return fingerprint(pki.cert.public_bytes(Encoding.DER))


def pkey_print(pki) -> str:
    return fingerprint(pki.cert.public_key().public_bytes(Encoding.DER,
                                                          PublicFormat.SubjectPublicKeyInfo))


def start(inst, pki, main_cf, opts=""):
    return h.start(inst, {"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": str(pki.pem),
                          "smtpd_tls_ask_ccert": "yes", "smtpd_tls_CAfile": str(pki.cafile),
                          "mynetworks": "192.0.2.0/24", **main_cf}, opts=opts)


def tls_session(port, pki, *, with_cert=True) -> smtplib.SMTP:
    ctx = ssl.create_default_context()
    pki.ca.configure_trust(ctx)
    if with_cert:
        pki.client.configure_cert(ctx)
    ctx.check_hostname = False
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    s.starttls(context=ctx)
    s.ehlo("client.example")
    return s


def table(inst, name: str, text: str) -> str:
    path = inst.config_dir / name
    path.write_text(text)
    return f"texthash:{path}"


@pytest.mark.parametrize("listed", ["certificate", "public key"])
def test_permit_tls_clientcerts_relays_for_a_listed_fingerprint(mailsys_instance, pki, listed):
    inst = mailsys_instance
    key = cert_print(pki) if listed == "certificate" else pkey_print(pki)
    certs = table(inst, "relay_clientcerts", f"{key} client.example\n")
    port = start(inst, pki, {"relay_clientcerts": certs, "smtpd_relay_restrictions":
                             "permit_mynetworks, permit_tls_clientcerts, reject_unauth_destination"})
    with tls_session(port, pki) as s:
        s.mail("a@example.org")
        assert s.rcpt("x@remote.example")[0] == 250
    with tls_session(port, pki, with_cert=False) as s:
        s.mail("a@example.org")
        assert s.rcpt("x@remote.example") == (554, b"5.7.1 <x@remote.example>: Relay access denied")


def test_permit_tls_all_clientcerts_relays_for_a_trusted_certificate(mailsys_instance, pki):
    inst = mailsys_instance
    port = start(inst, pki, {"smtpd_relay_restrictions":
                             "permit_tls_all_clientcerts, reject_unauth_destination"})
    with tls_session(port, pki) as s:
        s.mail("a@example.org")
        assert s.rcpt("x@remote.example")[0] == 250


def test_check_ccert_access_rejects_naming_the_certificate(mailsys_instance, pki):
    inst = mailsys_instance
    access = table(inst, "ccert_access", f"{pkey_print(pki)} REJECT stolen certificate\n")
    port = start(inst, pki, {"smtpd_client_restrictions": f"check_ccert_access {access}"})
    with tls_session(port, pki) as s:
        s.mail("a@example.org")
        assert s.rcpt("bob@example.test") == \
            (554, b"5.7.1 <client.example>: Client certificate rejected: stolen certificate")
    inst.wait_log(REJECT + "554 5.7.1 <client.example>: Client certificate rejected: stolen "
                  "certificate; from=<a@example.org> to=<bob@example.test> proto=ESMTP "
                  "helo=<client.example>")


def test_policy_request_carries_the_tls_session_and_certificate(mailsys_instance, pki):
    inst = mailsys_instance
    with h.PolicyServer(lambda attrs: "DUNNO") as policy:
        port = start(inst, pki, {"smtpd_recipient_restrictions":
                                 f"check_policy_service {policy.service}"}, opts="-o stress=yes")
        with tls_session(port, pki) as s:
            version, cipher = s.sock.version(), s.sock.cipher()
            s.mail("a@example.org")
            assert s.rcpt("bob@example.test")[0] == 250
    issuer = x509.load_pem_x509_certificate(pki.ca.cert_pem.bytes()).subject \
        .get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    (request,) = policy.requests
    assert {k: request[k] for k in ("ccert_subject", "ccert_issuer", "ccert_fingerprint",
                                    "ccert_pubkey_fingerprint", "encryption_protocol",
                                    "encryption_cipher", "encryption_keysize", "stress")} == {
        "ccert_subject": "client.example",
        "ccert_issuer": issuer.replace(" ", "+20"),           # xtext, as Postfix sends it
        "ccert_fingerprint": cert_print(pki), "ccert_pubkey_fingerprint": pkey_print(pki),
        "encryption_protocol": version, "encryption_cipher": cipher[0],
        "encryption_keysize": str(cipher[2]), "stress": "yes"}
