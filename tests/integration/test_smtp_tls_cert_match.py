"""The server certificate names the smtp and lmtp agents demand, under a real master.

smtp_tls_verify_cert_match, smtp_tls_secure_cert_match (lmtp_ for lmtp)
and a policy entry's match=, against TLS sinks whose trustme certificates
carry chosen names. Each expectation was seen with a private Postfix
3.7.11 client delivering to a second Postfix's TLS smtpd on loopback:

    server certificate verification failed for 127.0.0.1[127.0.0.1]:3302: num=64:IP address mismatch
    Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:3302: TLSv1.3 with cipher ...
    ...: to=<b@dest.example>, relay=127.0.0.1[127.0.0.1]:3302, ..., dsn=4.7.5, status=deferred (Server certificate not verified)
"""

from __future__ import annotations

import contextlib
import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trustme

from mailsys.config import load
from mailsys.tls import server_context

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

pytestmark = pytest.mark.integration

MX = "mx.tls.test"
SMTP = "smtp unix - - n - - smtp"
LMTP = "lmtp unix - - n - - lmtp"
CERTS = {"mx": [MX], "ip": ["127.0.0.1"], "ip2": ["127.0.0.2"], "wild": ["*.tls.test"],
         "below": ["a.mx.tls.test"]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for name, names in CERTS.items():
        ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(d / f"{name}.pem"))
    return d


@pytest.fixture(scope="module")
def dns():
    zone = {MX: {"A": ["127.0.0.1"]}}
    for domain in ("tls.test", "elsewhere.test", "other.test"):
        zone[domain] = {"MX": [(10, MX)]}
    with h.dnsserver.DnsServer(zone) as server:
        yield server


@contextlib.contextmanager
def sinks(tmp_path, pki, *certs, host="127.0.0.1", lmtp=False):
    """One TLS sink per certificate name, each on a port of its own: yields the ports."""
    etc = tmp_path / "sink-etc"
    etc.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        ports = []
        for cert in certs:
            (etc / "main.cf").write_text(f"smtpd_tls_cert_file = {pki / cert}.pem\n")
            sink = h.smtpsink.SmtpSink(tls=server_context(load(etc)), lmtp=lmtp)
            ports.append(stack.enter_context(h.SinkThread(sink, host=host)))
        yield ports


def deliver(inst, service, *deliveries):
    """(nexthop, recipient) pairs, one request each: the results, in order."""
    async def main():
        return [await h.call(inst, service, h.request_for(h.queue_message(inst, rcpt), nexthop,
                                                          rcpt, transport=service))
                for nexthop, rcpt in deliveries]
    return [status.results[0] for status in trio.run(main)]


def start(inst, dns, pki, master_cf=SMTP, **main_cf):
    inst.write_config(master_cf=[master_cf], main_cf={
        "dns_nameservers": dns.spec, "smtp_tls_CAfile": pki / "ca.pem", "smtp_tls_loglevel": "1",
        **main_cf})
    inst.start()


def mismatch(log, relay, rcpt, num="62:hostname mismatch"):
    """Postfix's three lines for a certificate without the names: why, the session, the deferral."""
    pid = r"mailsys/(?:smtp|lmtp)\[\d+\]: "
    assert re.search(
        rf"{pid}server certificate verification failed for {re.escape(relay)}: num={num}\n"
        rf".*{pid}Untrusted TLS connection established to {re.escape(relay)}: TLSv1\.3 .*\n"
        rf".*{pid}[0-9A-Za-z]+: to=<{re.escape(rcpt)}>, relay={re.escape(relay)}, .*dsn=4\.7\.5, "
        rf"status=deferred \(Server certificate not verified\)\n", log), log


def test_default_strategies(mailsys_instance, dns, pki, tmp_path):
    # verify: hostname (the MX host); secure: nexthop, dot-nexthop.
    inst = mailsys_instance
    with sinks(tmp_path, pki, "mx", "ip", "mx", "mx", "wild") as (mx, ip, mx_ip, mx2, wild), \
            sinks(tmp_path, pki, "ip2", host="127.0.0.2") as (ip2,):
        table = tmp_path / "tls_policy"
        table.write_text(f"/^elsewhere\\.test:{mx2}$/ secure\n"
                         f"/^\\[127\\.0\\.0\\.2\\]:{ip2}$/ secure\n"
                         f"/^tls\\.test:{wild}$/ verify match=a.b.tls.test\n")
        start(inst, dns, pki, smtp_tls_security_level="verify",
              smtp_tls_policy_maps=f"regexp:{table}")
        results = deliver(inst, "smtp",
                          (f"tls.test:{mx}", "a@tls.test"),
                          (f"[127.0.0.1]:{ip}", "b@tls.test"),
                          (f"[127.0.0.1]:{mx_ip}", "c@tls.test"),
                          (f"elsewhere.test:{mx2}", "d@elsewhere.test"),
                          (f"[127.0.0.2]:{ip2}", "e@tls.test"),
                          (f"tls.test:{wild}", "f@tls.test"))
    assert [(r.status, r.dsn) for r in results] == [
        ("sent", "2.0.0"), ("sent", "2.0.0"), ("deferred", "4.7.5"), ("deferred", "4.7.5"),
        ("deferred", "4.7.5"), ("deferred", "4.7.5")]
    log = inst.wait_log("to=<f@tls.test>")
    assert f"Verified TLS connection established to {MX}[127.0.0.1]:{mx}: TLSv1.3" in log
    assert f"Verified TLS connection established to 127.0.0.1[127.0.0.1]:{ip}: TLSv1.3" in log
    # An address next hop is checked as an address: the certificate has a name only.
    mismatch(log, f"127.0.0.1[127.0.0.1]:{mx_ip}", "c@tls.test", "64:IP address mismatch")
    # secure: the certificate is for mx.tls.test, not elsewhere.test or a name below it.
    mismatch(log, f"{MX}[127.0.0.1]:{mx2}", "d@elsewhere.test")
    # secure, [127.0.0.2]: dot-nexthop ".127.0.0.2" is a name no certificate has.
    mismatch(log, f"127.0.0.2[127.0.0.2]:{ip2}", "e@tls.test")
    # "*.tls.test" covers one label, tls_wildcard_matches_multiple_labels = yes or not.
    mismatch(log, f"{MX}[127.0.0.1]:{wild}", "f@tls.test")


def test_main_cf_strategies_and_match_attribute(mailsys_instance, dns, pki, tmp_path):
    inst = mailsys_instance
    with sinks(tmp_path, pki, "mx", "mx", "mx", "mx", "wild", "ip") as (
            tls, bracket, elsewhere, other, wild, ip):
        table = tmp_path / "tls_policy"
        table.write_text(f"/^elsewhere\\.test:{elsewhere}$/ secure\n"
                         f"/^other\\.test:{other}$/ verify match=hostname\n"
                         f"/^tls\\.test:{wild}$/ secure match=nope.test:.tls.test\n"
                         f"/^\\[127\\.0\\.0\\.1\\]:{ip}$/ verify match=127.0.0.1:127.0.0.2\n")
        start(inst, dns, pki, smtp_tls_security_level="verify",
              smtp_tls_verify_cert_match="nexthop", smtp_tls_secure_cert_match="hostname",
              tls_wildcard_matches_multiple_labels="no", smtp_tls_policy_maps=f"regexp:{table}")
        results = deliver(inst, "smtp",
                          (f"tls.test:{tls}", "a@tls.test"),
                          (f"[{MX}]:{bracket}", "b@tls.test"),
                          (f"elsewhere.test:{elsewhere}", "c@elsewhere.test"),
                          (f"other.test:{other}", "d@other.test"),
                          (f"tls.test:{wild}", "e@tls.test"),
                          (f"[127.0.0.1]:{ip}", "f@tls.test"))
    assert [r.status for r in results] == ["deferred", "sent", "sent", "sent", "sent", "sent"]
    log = inst.wait_log("to=<f@tls.test>")
    # verify by nexthop: tls.test is not mx.tls.test; [mx.tls.test] is.
    mismatch(log, f"{MX}[127.0.0.1]:{tls}", "a@tls.test")
    # Postfix warns of a second address and checks the first.
    assert re.search(rf"mailsys/smtp\[\d+\]: warning: 127\.0\.0\.1\[127\.0\.0\.1\]:{ip}: "
                     r'error loading match name: "127\.0\.0\.2"\n', log), log


def test_lmtp_secure_defaults_to_nexthop_alone(mailsys_instance, dns, pki, tmp_path):
    # lmtp_tls_secure_cert_match = nexthop (smtp's is nexthop, dot-nexthop):
    # a certificate for a name below the next hop will not do.
    inst = mailsys_instance
    with sinks(tmp_path, pki, "below", "below", lmtp=True) as (below, dotted):
        table = tmp_path / "lmtp_policy"
        table.write_text(f"/^{re.escape(MX)}:{dotted}$/ secure match=nexthop:dot-nexthop\n")
        start(inst, dns, pki, master_cf=LMTP, lmtp_tls_security_level="secure",
              lmtp_tls_CAfile=pki / "ca.pem", lmtp_tls_loglevel="1",
              lmtp_tls_policy_maps=f"regexp:{table}")
        results = deliver(inst, "lmtp", (f"inet:{MX}:{below}", "a@tls.test"),
                          (f"inet:{MX}:{dotted}", "b@tls.test"))
    assert [r.status for r in results] == ["deferred", "sent"]
    mismatch(inst.wait_log("to=<b@tls.test>"), f"{MX}[127.0.0.1]:{below}", "a@tls.test")


def test_an_empty_strategy_list_stops_the_program(mailsys_instance, dns, pki):
    # Postfix 3.7.11: "postfix/smtp[825]: fatal: bad string length 0 < 1:
    # smtp_tls_verify_cert_match = ", at any security level.
    inst = mailsys_instance
    start(inst, dns, pki, smtp_tls_verify_cert_match="")

    async def main():
        with trio.move_on_after(5):
            await h.call(inst, "smtp", h.request_for(h.queue_message(inst, "a@tls.test"),
                                                     "tls.test", "a@tls.test"))
    trio.run(main)
    log = inst.wait_log("bad string length")
    assert re.search(r"mailsys/smtp\[\d+\]: fatal: bad string length 0 < 1: "
                     r"smtp_tls_verify_cert_match = \n", log), log
