"""A relayhost or fallback relay that fails for good defers, as a configuration problem.

Postfix smtp_connect.c, once every server of a request was tried: when the
status left for the recipients is hard (not 4.x.x) and the transport is
not LMTP, a failing smtp_fallback_relay next hop logs "warning:
smtp_fallback_relay configuration problem", else a next hop that is
$relayhost logs "warning: relayhost configuration problem"; either way the
status becomes 4.3.5 with the text kept, so the mail is deferred. Postfix
3.7 (smtp_host_lookup = native, two recipients, one warning):

    warning: relayhost configuration problem
    7C58821455F: to=<b@example.net>, relay=none, ..., dsn=4.3.5, status=deferred
        (unable to look up host nonexistent.invalid: Name or service not known)

A 5xx greeting is no such problem: smtp_skip_5xx_greeting (yes) makes it
4.7.1 and deferred at the last server, without a warning; with no, it
bounces (5.0.0 for a bare 554), without a warning either.
"""

from __future__ import annotations

import dataclasses
import re
import runpy
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
t = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("test_smtp_agent.py"))))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOT_FOUND = ("Host or domain name not found. Name service error for name=nonexistent.invalid "
             "type=A: Host not found")
ZONE = {"hosted.test": {"MX": [(10, "mx.hosted.test")]}, "mx.hosted.test": {"A": ["127.0.0.1"]}}


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(nexthop: str, *rcpts: str, zone=None, sink=None, **kw):
    """Deliver one request in-process: its status and the log lines."""
    s = dataclasses.replace(t.settings(own=kw.pop("own", ())), **kw)

    async def main():
        async with trio.open_nursery() as n:
            hop = nexthop
            if sink is not None:
                port = await n.start(sink.serve)
                hop = nexthop.format(port=port)
            status = await t.agent(s, dns).deliver(h.request(hop, *rcpts))
            n.cancel_scope.cancel()
        return status
    with h.dnsserver.DnsServer(zone or {}) as dns, h.capture_logs() as logs:
        status = trio.run(main)
    return status, h.lines(logs)


def warnings(lines: list[str]) -> list[str]:
    """The configuration problem lines (the level is the real master test's)."""
    return [line for line in lines if "configuration problem" in line]


def test_a_relayhost_not_found_defers_with_a_warning_once():
    status, lines = run("[nonexistent.invalid]", "b@example.net", "c@example.net",
                        relayhost="[nonexistent.invalid]")
    assert [(r.status, r.dsn, r.reason, r.relay) for r in status.results] == \
        [("deferred", "4.3.5", NOT_FOUND, "none")] * 2
    assert warnings(lines) == ["relayhost configuration problem"]
    assert status.dead_destination


def test_the_same_next_hop_when_it_is_not_the_relayhost_bounces():
    status, lines = run("[nonexistent.invalid]", "b@example.net")
    assert [(r.status, r.dsn, r.reason) for r in status.results] == \
        [("bounced", "5.4.4", NOT_FOUND)]
    assert warnings(lines) == []


def test_the_relayhost_is_compared_whole():
    # strcmp(sites->argv[0], var_relayhost): a relayhost of two
    # destinations is never the first one alone.
    status, lines = run("[nonexistent.invalid]", "b@example.net",
                        relayhost="[nonexistent.invalid], [other.invalid]")
    assert status.results[0].status == "bounced" and warnings(lines) == []


def test_a_relayhost_that_loops_back_here_defers_and_is_not_passed_on():
    own = {("127.0.0.1", 2525)}
    status, lines = run("hosted.test:2525", "b@example.net", zone=ZONE, own=own,
                        relayhost="hosted.test:2525")
    [r] = status.results
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.3.5",
                                           "mail for hosted.test loops back to myself")
    assert warnings(lines) == ["relayhost configuration problem"]


def test_a_fallback_relay_not_found_after_a_refused_relayhost():
    relay = f"[127.0.0.1]:{closed_port()}"
    status, lines = run(relay, "b@example.net", "c@example.net", relayhost=relay,
                        fallback_relay=("[nonexistent.invalid]",))
    assert [(r.status, r.dsn, r.reason, r.relay) for r in status.results] == \
        [("deferred", "4.3.5", NOT_FOUND, "none")] * 2
    assert warnings(lines) == ["smtp_fallback_relay configuration problem"]
    assert any(re.match(r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: Connection refused$",
                        line) for line in lines), lines


def test_a_fallback_relay_not_found_for_a_destination_not_found():
    status, lines = run("[gone.invalid]", "b@example.net",
                        fallback_relay=("[nonexistent.invalid]",))
    [r] = status.results
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.3.5", NOT_FOUND)
    assert warnings(lines) == ["smtp_fallback_relay configuration problem"]


def test_a_refused_fallback_relay_leaves_its_soft_status():
    # Postfix: relayhost = [nonexistent.invalid], smtp_fallback_relay =
    # [127.0.0.1]:3603 gave dsn=4.4.1 "connect to ...: Connection refused".
    status, lines = run("[nonexistent.invalid]", "b@example.net",
                        relayhost="[nonexistent.invalid]",
                        fallback_relay=(f"[127.0.0.1]:{closed_port()}",))
    [r] = status.results
    assert (r.status, r.dsn) == ("deferred", "4.4.1")
    assert r.reason.endswith("Connection refused")
    assert warnings(lines) == []


def test_lmtp_has_no_configuration_problem():
    status, lines = run("[nonexistent.invalid]", "b@example.net",
                        relayhost="[nonexistent.invalid]", lmtp=True)
    assert (status.results[0].status, status.results[0].dsn) == ("bounced", "5.4.4")
    assert warnings(lines) == []


def test_a_5xx_greeting_from_the_relayhost_is_deferred_without_a_warning():
    sink = t.SmtpSink(greeting="554 5.7.1 go away")
    status, lines = run("[127.0.0.1]:{port}", "b@example.net", sink=sink,
                        relayhost="[127.0.0.1]")
    [r] = status.results
    assert (r.status, r.dsn) == ("deferred", "4.7.1")
    assert r.reason == "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away"
    assert warnings(lines) == []


def test_a_5xx_greeting_bounces_without_smtp_skip_5xx_greeting():
    sink = t.SmtpSink(greeting="554 5.7.1 go away")
    status, lines = run("[127.0.0.1]:{port}", "b@example.net", sink=sink,
                        skip_5xx_greeting=False)
    assert (status.results[0].status, status.results[0].dsn) == ("bounced", "5.7.1")
    assert warnings(lines) == []


def test_relayhost_not_found_through_a_real_master(mailsys_instance):
    inst = mailsys_instance
    with h.dnsserver.DnsServer(ZONE) as dns:
        inst.write_config(master_cf=["smtp unix - - n - - smtp",
                                     "cleanup unix n - n - 0 cleanup"],
                          main_cf={"dns_nameservers": dns.spec,
                                   "relayhost": "[nonexistent.invalid]"})
        inst.start()
        qid = h.queue_message(inst, "b@example.net", "c@example.net")
        status = trio.run(h.call, inst, "smtp",
                          h.request_for(qid, "[nonexistent.invalid]", "b@example.net",
                                        "c@example.net"))
    assert [(r.status, r.dsn) for r in status.results] == [("deferred", "4.3.5")] * 2
    log = inst.wait_log(f"{qid}: to=<c@example.net>")
    assert len(re.findall(r"mailsys/smtp\[\d+\]: warning: relayhost configuration problem\n",
                          log)) == 1, log
    assert re.search(rf"{qid}: to=<b@example\.net>, relay=none, delay=[\d.]+, "
                     rf"delays=[\d./]+, dsn=4\.3\.5, status=deferred \({re.escape(NOT_FOUND)}\)",
                     log), log
