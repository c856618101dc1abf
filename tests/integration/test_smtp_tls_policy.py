"""smtp_tls_policy_maps in the smtp agent: a per-destination level over smtp_tls_security_level.

The agent runs in-process against the trio SmtpSink with trustme
certificates, as test_smtp_agent_tls.py does; the policy table is a
regexp table, since the sink's port is only known once it listens.
"""

from __future__ import annotations

import hashlib
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpSettings
from mailsys.runtime.smtp_tls import tls_policies, tls_policy

here = Path(__file__).parent
t = SimpleNamespace(**runpy.run_path(str(here / "test_smtp_agent_tls.py")))
h = t.h
pki, dns = t.pki, t.dns          # the fixtures, shared with test_smtp_agent_tls.py
MX = t.MX


def run(tmp_path, pki, dns, sink, policy: str, nexthop=f"[{MX}]", **params):
    """One delivery with ``policy`` as the entry of nexthop:PORT; (result, log lines)."""
    key = nexthop.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")
    table = tmp_path / f"tls_policy{len(list(tmp_path.glob('tls_policy*')))}"
    table.write_text(f"/^{key}:[0-9]+$/ {policy}\n")
    params.setdefault("smtp_tls_CAfile", pki / "ca.pem")
    cfg = t.config(tmp_path, smtp_tls_policy_maps=f"regexp:{table}", smtp_tls_loglevel="1",
                   **params)
    settings = SmtpSettings(helo_name="client.test", timeouts={n: 5.0 for n in TIMEOUT_PARAMS},
                            tls=tls_policy(cfg), tls_for=tls_policies(cfg), cache_time_limit=0)
    _, results, lines = t.deliver(settings, dns, sink, nexthop + ":{port}")
    return results[0], lines


def tls_sink(tmp_path, pki):
    return h.smtpsink.SmtpSink(tls=t.sink_context(tmp_path, pki))


def test_an_entry_turns_tls_on_where_the_global_level_is_none(tmp_path, pki, dns):
    sink = tls_sink(tmp_path, pki)
    r, lines = run(tmp_path, pki, dns, sink, "encrypt", smtp_tls_security_level="none")
    assert r.status == "sent" and sink.tls_sessions == 1


def test_none_overrides_a_global_encrypt(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink()          # no STARTTLS: global encrypt would defer
    r, _ = run(tmp_path, pki, dns, sink, "none", smtp_tls_security_level="encrypt")
    assert r.status == "sent" and sink.tls_sessions == 0


def test_encrypt_entry_without_starttls_defers(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink()
    r, _ = run(tmp_path, pki, dns, sink, "encrypt", smtp_tls_security_level="may")
    assert (r.status, r.dsn, r.reason) == (
        "deferred", "4.7.4", f"TLS is required, but was not offered by host {MX}[127.0.0.1]")
    assert sink.messages == []


def test_verify_match_names_the_certificate_must_carry(tmp_path, pki, dns):
    sink = tls_sink(tmp_path, pki)
    r, lines = run(tmp_path, pki, dns, sink, f"verify match=other.test:{MX}")
    assert r.status == "sent"
    assert any(l.startswith(f"Verified TLS connection established to {MX}") for l in lines)
    sink = tls_sink(tmp_path, pki)
    r, _ = run(tmp_path, pki, dns, sink, "secure match=other.test:.other.test")
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.5", "Server certificate not verified")
    assert sink.messages == []


def test_protocols_attribute_is_used(tmp_path, pki, dns):
    # The sink speaks at most TLSv1.2; the entry asks for TLSv1.3 only.
    sink = h.smtpsink.SmtpSink(tls=t.sink_context(tmp_path, pki, smtpd_tls_protocols="<=TLSv1.2"))
    r, _ = run(tmp_path, pki, dns, sink, "encrypt protocols=>=TLSv1.3")
    assert (r.status, r.dsn) == ("deferred", "4.7.5") and sink.messages == []
    sink = h.smtpsink.SmtpSink(tls=t.sink_context(tmp_path, pki, smtpd_tls_protocols="<=TLSv1.2"))
    r, _ = run(tmp_path, pki, dns, sink, "encrypt protocols=<=TLSv1.2")
    assert r.status == "sent" and sink.tls_sessions == 1


def fingerprints(pki) -> tuple[str, str]:
    cert = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    der = cert.public_bytes(Encoding.DER)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    colons = lambda d: ":".join(f"{b:02X}" for b in hashlib.sha256(d).digest())   # noqa: E731
    return colons(der), colons(spki)


def test_fingerprint_of_the_certificate_or_its_public_key(tmp_path, pki, dns):
    cert_fp, key_fp = fingerprints(pki)
    for fp in (cert_fp, key_fp.lower().replace(":", "")):
        sink = tls_sink(tmp_path, pki)
        r, _ = run(tmp_path, pki, dns, sink, f"fingerprint match=00:11|{fp}",
                   smtp_tls_CAfile=pki / "other.pem")     # no chain check at this level
        assert r.status == "sent" and sink.tls_sessions == 1
    sink = tls_sink(tmp_path, pki)
    r, lines = run(tmp_path, pki, dns, sink, "fingerprint match=00:11:22")
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.5", "Server certificate not verified")
    assert sink.messages == []
    # Postfix 3.7 checks fingerprints as DANE-EE records (seen live).
    assert any(t.startswith(f"server certificate verification failed for {MX}[127.0.0.1]:")
               and t.endswith(": num=65:no matching DANE TLSA records") for t in lines), lines


@pytest.mark.parametrize("entry, warning", [
    ("encrypt ciphers=high ciphers=low",
     'attribute "ciphers" is specified multiple times'),
    ("dane-only", "dane-only configured with dnssec lookups disabled"),
    ("encrypt foo=bar", 'smtp_tls_policy_maps, next-hop destination "[mx.tls.test]:'),
])
def test_an_unusable_entry_defers_and_warns(tmp_path, pki, dns, entry, warning):
    sink = tls_sink(tmp_path, pki)
    r, lines = run(tmp_path, pki, dns, sink, entry)
    assert (r.status, r.dsn, r.reason, r.relay) == (
        "deferred", "4.7.5", "client TLS configuration problem", "none")
    # Postfix 3.7.11 logs these two warnings (with its own dest and host).
    assert any(warning in l for l in lines), lines
    assert any(l.startswith(f"TLS policy lookup for [{MX}]:") and
               l.endswith(f"/{MX}: client TLS configuration problem") for l in lines), lines
    assert sink.sessions == 0
