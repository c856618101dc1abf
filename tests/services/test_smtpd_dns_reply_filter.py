"""smtpd_dns_reply_filter over a real small DNS server (tests/dnsserver.py), in a session.

Postfix 3.7.11 in a private network namespace with its own resolver, the
zone below, this filter and reject_unknown_sender_domain,
reject_rbl_client bl.test, reject_rbl_client bl2.test logged:

    ignoring DNS RR: filt.test. 60 IN A 192.0.2.66
    warning: filt.test: MX or address lookup error: DNS reply filter drops all results
    ignoring DNS RR: 1.0.0.127.bl.test. 60 IN A 127.0.0.2
    warning: 1.0.0.127.bl.test: RBL lookup error: Error looking up
        name=1.0.0.127.bl.test type=A: DNS reply filter drops all results
    ... 554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using bl2.test; listed
    ignoring DNS RR: twoa.test. 60 IN A 192.0.2.66          (and the sender passed)
    warning: smtpd_dns_reply_filter: unknown DNS filter action: "REJECT"
    ignoring DNS RR: mxf.test. 60 IN MX 10 mx.ok.test.
    warning: mxf.test: MX or address lookup error: DNS reply filter drops all results
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent))      # _smtpd_testlib.py (tests/ is no package)
sys.path.insert(0, str(Path(__file__).parents[1]))  # dnsserver.py
from _smtpd_testlib import PARAMS, open_session, trio_test  # noqa: E402
from dnsserver import DnsServer  # noqa: E402

pytestmark = pytest.mark.timeout(60)

ZONE = {
    "ok.test": {"MX": [(10, "mx.ok.test")]}, "mx.ok.test": {"A": ["127.0.0.5"]},
    "filt.test": {"A": ["192.0.2.66"]},
    "twoa.test": {"A": ["192.0.2.66", "127.0.0.9"]},
    "mxf.test": {"MX": [(10, "mx.ok.test")]},
    "bad.test": {"A": ["127.0.0.8"]},
    "7.2.0.192.bl.test": {"A": ["127.0.0.2"], "TXT": ["listed"]},
    "7.2.0.192.bl2.test": {"A": ["127.0.0.2"], "TXT": ["listed"]},
}

FILTER = (r"/ IN A 192\.0\.2\.66$/ IGNORE" "\n"
          r"/^7\.2\.0\.192\.bl\.test\. .* IN A / IGNORE" "\n"
          r"/^bad\.test\./ REJECT" "\n"
          r"/^mxf\.test\. .* IN MX / IGNORE" "\n")


def events(logs, level=None):
    return [e["event"] for e in logs if level is None or e.get("log_level") == level]


async def session(make_config, tmp_path, restrictions, commands: bytes, count: int,
                  **params):
    (tmp_path / "filter").write_text(FILTER)
    with DnsServer(ZONE) as dns:
        cfg = make_config(**PARAMS, dns_nameservers=dns.spec, mynetworks="127.0.0.0/8",
                          smtpd_recipient_restrictions=restrictions,
                          **params)
        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                client, _ = await open_session(nursery, cfg)
                await client.send(b"EHLO c.example\r\n" + commands)
                got = await client.replies(count)
                nursery.cancel_scope.cancel()
    return got, logs


def sender(address: str) -> bytes:
    return f"MAIL FROM:<{address}>\r\nRCPT TO:<x@example.test>\r\nRSET\r\n".encode()


@trio_test
async def test_unknown_sender_domain_through_the_filter(make_config, tmp_path):
    senders = ["a@filt.test", "a@twoa.test", "a@mxf.test", "a@bad.test", "a@ok.test"]
    got, logs = await session(
        make_config, tmp_path, "reject_unknown_sender_domain, permit",
        b"".join(sender(s) for s in senders), 1 + 3 * len(senders),
        smtpd_dns_reply_filter=f"regexp:{tmp_path}/filter")
    rcpt = got[2::3]
    assert rcpt == ["250 2.1.5 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok",
                    "450 4.1.8 <a@bad.test>: Sender address rejected: Domain not found",
                    "250 2.1.5 Ok"]
    info = events(logs, "info")
    assert "ignoring DNS RR: filt.test. 60 IN A 192.0.2.66" in info
    assert "ignoring DNS RR: twoa.test. 60 IN A 192.0.2.66" in info
    assert "ignoring DNS RR: mxf.test. 60 IN MX 10 mx.ok.test." in info
    warnings = events(logs, "warning")
    assert "filt.test: MX or address lookup error: DNS reply filter drops all results" in warnings
    assert "mxf.test: MX or address lookup error: DNS reply filter drops all results" in warnings
    assert 'smtpd_dns_reply_filter: unknown DNS filter action: "REJECT"' in warnings
    assert not any("twoa.test" in w for w in warnings)


@trio_test
async def test_without_the_filter_nothing_is_dropped(make_config, tmp_path):
    got, logs = await session(make_config, tmp_path, "reject_unknown_sender_domain, permit",
                              sender("a@bad.test") + sender("a@filt.test"), 7)
    assert got[2::3] == ["250 2.1.5 Ok", "250 2.1.5 Ok"]
    assert not any("DNS" in e for e in events(logs))


@trio_test
async def test_dns_list_answer_dropped_by_the_filter(make_config, tmp_path):
    got, logs = await session(
        make_config, tmp_path, "reject_rbl_client bl.test, reject_rbl_client bl2.test, permit",
        sender("a@ok.test"), 4, smtpd_dns_reply_filter=f"regexp:{tmp_path}/filter")
    assert got[2] == ("554 5.7.1 Service unavailable; Client host [192.0.2.7] blocked using "
                      "bl2.test; listed")
    assert "ignoring DNS RR: 7.2.0.192.bl.test. 60 IN A 127.0.0.2" in events(logs, "info")
    assert ("7.2.0.192.bl.test: RBL lookup error: Error looking up name=7.2.0.192.bl.test "
            "type=A: DNS reply filter drops all results") in events(logs, "warning")
