"""STARTTLS in the smtp agent, per smtp_tls_security_level, with trustme certificates."""

from __future__ import annotations

import runpy
import socket
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trustme

from mailsys.config import load
from mailsys.config.client_program import client_config
from mailsys.runtime import smtp_client_io
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings
from mailsys.runtime.smtp_tls import tls_policy
from mailsys.tls import server_context

# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

MX = "mx.tls.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.issue_cert(MX).private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    other.cert_pem.write_to_path(str(d / "other.pem"))
    return d


@pytest.fixture(scope="module")
def dns():
    zone = {MX: {"A": ["127.0.0.1"]}, "tls.test": {"MX": [(10, MX)]},
            "elsewhere.test": {"MX": [(10, MX)]}}
    with h.dnsserver.DnsServer(zone) as server:
        yield server


def config(tmp_path, **params):
    etc = tmp_path / f"etc{len(list(tmp_path.glob('etc*')))}"
    etc.mkdir()
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    return load(etc)


def sink_context(tmp_path, pki, **params):
    return server_context(config(tmp_path, smtpd_tls_cert_file=pki / "server.pem", **params))


def run(tmp_path, pki, dns, sink, level, ca="ca.pem", nexthop=f"[{MX}]", **client_params):
    cfg = config(tmp_path, smtp_tls_security_level=level, smtp_tls_CAfile=pki / ca,
                 smtp_tls_loglevel="1", **client_params)
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    settings = SmtpSettings(helo_name="client.test", timeouts=t, tls=tls_policy(cfg),
                            cache_time_limit=0)
    _, results, lines = deliver(settings, dns, sink, nexthop + ":{port}")
    return results[0], lines


def deliver(settings, dns, sink, nexthop, *rcpts, transport="smtp", port=0):
    """One request to the sink (nexthop has a {port}; port 0: a free one):
    (port, results, log lines)."""
    async def load_content(qid):
        return h.CONTENT
    agent = SmtpAgent(settings, Resolver([("127.0.0.1", dns.port)], lifetime=1.0), load_content)

    port_wanted = port

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve, "127.0.0.1", port_wanted)
            status = await agent.deliver(h.request(nexthop.format(port=port), *rcpts,
                                                   transport=transport))
            n.cancel_scope.cancel()
        return port, status
    with h.capture_logs() as logs:
        port, status = trio.run(main)
    return port, status.results, h.lines(logs)


def test_may_uses_starttls_when_offered(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "may")
    assert r.status == "sent" and sink.tls_sessions == 1
    assert sink.messages[0].data == h.CONTENT
    assert [c.split()[0] for c in sink.commands[:3]] == ["EHLO", "STARTTLS", "EHLO"]
    assert any(t.startswith(f"Trusted TLS connection established to {MX}[127.0.0.1]:") for t in lines), lines


def test_our_own_name_in_the_ehlo_reply_inside_tls_is_a_loop(tmp_path, pki, dns, monkeypatch):
    # Postfix's smtp_helo() reads the EHLO reply after STARTTLS as the first.
    # A free port stands in for 25 (smtp_client_io.LOOP_DETECT_PORT).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        own_port = s.getsockname()[1]
    monkeypatch.setattr(smtp_client_io, "LOOP_DETECT_PORT", own_port)
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki), tls_name="client.test")
    cfg = config(tmp_path, smtp_tls_security_level="may", smtp_tls_CAfile=pki / "ca.pem")
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    settings = SmtpSettings(helo_name="client.test", myhostname="client.test", timeouts=t,
                            tls=tls_policy(cfg), cache_time_limit=0)
    _, results, lines = deliver(settings, dns, sink, f"[{MX}]:{own_port}", port=own_port)
    assert (results[0].status, results[0].dsn) == ("bounced", "5.4.6")
    assert results[0].reason == f"mail for [{MX}]:{own_port} loops back to myself"
    assert f"host {MX}[127.0.0.1]:{own_port} replied to HELO/EHLO with my own hostname " \
           "client.test" in lines, lines
    assert sink.tls_sessions == 1 and sink.messages == []


def test_may_without_starttls_sends_in_plaintext(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink()
    r, _ = run(tmp_path, pki, dns, sink, "may")
    assert r.status == "sent" and sink.tls_sessions == 0


def test_may_falls_back_to_plaintext_after_a_failed_handshake(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki, smtpd_tls_protocols="<=TLSv1.2"))
    r, lines = run(tmp_path, pki, dns, sink, "may", smtp_tls_protocols=">=TLSv1.3")
    assert r.status == "sent"
    assert sink.sessions == 2 and sink.tls_sessions == 0
    assert any("Cannot start TLS: handshake failure" in t and "trying plaintext" in t for t in lines)


def test_encrypt_requires_starttls(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink()
    r, _ = run(tmp_path, pki, dns, sink, "encrypt")
    assert (r.status, r.dsn) == ("deferred", "4.7.4")
    assert r.reason == f"TLS is required, but was not offered by host {MX}[127.0.0.1]"
    assert sink.messages == []


@pytest.mark.parametrize("reply, status, dsn", [
    ("454 4.7.0 TLS not available due to local problem", "deferred", "4.7.0"),
    ("554 5.7.3 no TLS for you", "bounced", "5.7.3"),
])
def test_encrypt_and_starttls_refused_takes_the_server_status(tmp_path, pki, dns, reply, status,
                                                              dsn):
    # Postfix smtp_proto.c: smtp_site_fail() with the server's reply, so
    # its status decides (a 5xx bounces) and it is the diagnostic (seen
    # live with Postfix 3.7.11).
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki), starttls=reply)
    r, _ = run(tmp_path, pki, dns, sink, "encrypt")
    assert (r.status, r.dsn) == (status, dsn)
    assert r.reason == f"TLS is required, but host {MX}[127.0.0.1] refused to start TLS: {reply}"
    assert r.remote_mta == MX and r.diagnostic == f"smtp; {reply}"
    assert sink.messages == [] and sink.tls_sessions == 0


def test_verify_accepts_the_right_ca_and_refuses_another(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "verify")
    assert r.status == "sent" and sink.tls_sessions == 1
    assert any(t.startswith(f"Verified TLS connection established to {MX}") for t in lines), lines

    # As Postfix 3.7 logs it (seen live): why, first, then the session, then
    # only "Server certificate not verified" as the reason.
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "verify", ca="other.pem")
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.5", "Server certificate not verified")
    assert sink.messages == []
    failed = [i for i, t in enumerate(lines)
              if t.startswith(f"certificate verification failed for {MX}[127.0.0.1]:")]
    assert len(failed) == 1 and ": untrusted issuer /O=trustme" in lines[failed[0]]
    assert lines[failed[0] + 1].startswith(f"Untrusted TLS connection established to {MX}")


def test_note_starttls_offer_with_tls_off(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "none", smtp_tls_note_starttls_offer="yes")
    assert r.status == "sent" and sink.tls_sessions == 0
    assert f"Host offered STARTTLS: [{MX}]" in lines


def test_secure_matches_the_next_hop_domain_not_the_mx_name(tmp_path, pki, dns):
    # The certificate is for mx.tls.test: below the next hop tls.test, so
    # secure accepts it; for elsewhere.test, whose (unsigned) MX record
    # points at the same host, secure refuses what verify accepts.
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "secure", nexthop="tls.test")
    assert r.status == "sent" and sink.tls_sessions == 1
    assert any(t.startswith(f"Verified TLS connection established to {MX}") for t in lines)

    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "secure", nexthop="elsewhere.test")
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.5", "Server certificate not verified")
    assert any(t.startswith(f"server certificate verification failed for {MX}[127.0.0.1]:")
               and t.endswith(": num=62:hostname mismatch") for t in lines), lines
    assert sink.messages == []

    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, _ = run(tmp_path, pki, dns, sink, "verify", nexthop="elsewhere.test")
    assert r.status == "sent"


def test_secure_with_a_bracketed_next_hop_matches_that_host(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, _ = run(tmp_path, pki, dns, sink, "secure")
    assert r.status == "sent" and sink.tls_sessions == 1
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, _ = run(tmp_path, pki, dns, sink, "secure", ca="other.pem")
    assert (r.status, r.dsn) == ("deferred", "4.7.5") and sink.messages == []


# -- LMTP: the same client as the lmtp program, lmtp_tls_* parameters ------------------

def run_lmtp(tmp_path, dns, sink, *rcpts, **params):
    cfg = client_config(config(tmp_path, **params), "lmtp")
    settings = replace(SmtpSettings.from_config(cfg, tls=tls_policy(cfg), program="lmtp"),
                       cache_time_limit=0)
    return deliver(settings, dns, sink, f"inet:{MX}:{{port}}", *rcpts, transport="lmtp")


def test_lmtp_starttls_per_lmtp_tls_security_level(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki), lmtp=True,
                               rcpt_dot={"b@example.org": "452 4.2.2 <b@example.org> Over quota"})
    # smtp_tls_* say nothing: the lmtp program reads lmtp_tls_*.
    port, (a, b), lines = run_lmtp(tmp_path, dns, sink, "a@example.org", "b@example.org",
                                   lmtp_tls_security_level="verify",
                                   lmtp_tls_CAfile=pki / "ca.pem", lmtp_tls_loglevel="1",
                                   smtp_tls_security_level="none")
    assert sink.tls_sessions == 1
    assert [c.split()[0] for c in sink.commands[:3]] == ["LHLO", "STARTTLS", "LHLO"]
    assert (a.status, a.reason, a.relay) == ("sent", "250 2.0.0 <a@example.org> Saved",
                                             f"{MX}[127.0.0.1]:{port}")
    assert (b.status, b.dsn, b.reason) == (
        "deferred", "4.2.2", f"host {MX}[127.0.0.1] said: 452 4.2.2 <b@example.org> Over quota "
        "(in reply to end of DATA command)")
    assert any(l.startswith(f"Verified TLS connection established to {MX}[127.0.0.1]:{port}")
               for l in lines), lines


def test_lmtp_encrypt_without_starttls_defers(tmp_path, pki, dns):
    sink = h.smtpsink.SmtpSink(lmtp=True)
    port, (a,), _ = run_lmtp(tmp_path, dns, sink, "a@example.org",
                             lmtp_tls_security_level="encrypt")
    assert (a.status, a.dsn, a.reason) == (
        "deferred", "4.7.4", f"TLS is required, but was not offered by host {MX}[127.0.0.1]")
    assert sink.messages == []


@pytest.mark.parametrize("servername, nexthop, sent", [
    ("", "tls.test", []),                          # Postfix: no SNI unless asked for
    ("hostname", "tls.test", [MX]),
    ("nexthop", "tls.test", ["tls.test"]),
    ("nexthop", f"[{MX}]", [MX]),
    ("sni.example.net", "tls.test", ["sni.example.net"]),
])
def test_smtp_tls_servername_chooses_the_sni_name(tmp_path, pki, dns, servername, nexthop, sent):
    names = []
    ctx = server_context(config(tmp_path, smtpd_tls_cert_file=pki / "server.pem"),
                         sni=lambda key: names.append(key))     # records, matches nothing
    sink = h.smtpsink.SmtpSink(tls=ctx)
    r, _ = run(tmp_path, pki, dns, sink, "may", nexthop=nexthop, smtp_tls_servername=servername)
    assert r.status == "sent" and sink.tls_sessions == 1
    assert names[:1] == sent


def test_an_invalid_smtp_tls_servername_defers_before_connecting(tmp_path, pki, dns):
    # As Postfix 3.7 logs it (seen live).
    sink = h.smtpsink.SmtpSink(tls=sink_context(tmp_path, pki))
    r, lines = run(tmp_path, pki, dns, sink, "may", smtp_tls_servername="bad_name!")
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.5", "client TLS configuration problem")
    assert sink.sessions == 0
    assert '"smtp_tls_servername = bad_name!" specifies an invalid hostname' in lines
    assert any(t.startswith(f"TLS policy lookup for [{MX}]:") and
               t.endswith(f"/{MX}: client TLS configuration problem") for t in lines), lines
