"""smtp_reply_filter, smtp_dns_reply_filter and smtp_delivery_status_filter
in the smtp delivery agent, in-process over loopback, settings read from a
main.cf as the daemon reads them.

Postfix 3.7 was seen live relaying to a recording server whose RCPT reply
was "550 5.1.1 <reject@example.net>: User unknown": with smtp_reply_filter
``/^550 5\\.1\\.1 (.*)/ 450 4.1.1 $1`` and smtp_delivery_status_filter
``/^4\\.1\\.1 (.*)/ 5.1.9 bounced: $1`` and ``/^2\\.0\\.0 (.*queued as.*)/
2.6.0 filtered: $1`` it logged

    to=<reject@example.net>, ... dsn=5.1.9, status=bounced (bounced: host
      127.0.0.1[127.0.0.1] said: 450 4.1.1 <reject@example.net>: User unknown
      (in reply to RCPT TO command))
    to=<ok@example.net>, ... dsn=2.6.0, status=sent (filtered: 250 2.0.0 Ok:
      queued as REC1)

and with ``/^4\\.1\\.1 (.*)/ 2.0.0 x`` "warning: smtp_delivery_status_filter:
bad status code: 2.0.0 x" and the result unchanged (dsn=4.1.1, deferred)."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.config.client_program import client_config
from mailsys.config.loader import load
from mailsys.routing import NextHop, RouteError
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import SmtpAgent, SmtpSettings
from mailsys.runtime.smtp_client_io import ConnectionCache

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
DnsServer, SmtpSink = h.dnsserver.DnsServer, h.smtpsink.SmtpSink


def configure(tmp_path, program="smtp", **tables: str):
    """Settings and resolver from a main.cf whose parameters name regexp
    tables with the given text (parameter name -> table lines)."""
    main = [f"queue_directory = {tmp_path}/q"]
    for name, text in tables.items():
        if name == "dns_nameservers":
            main.append(f"{name} = {text}")
            continue
        path = tmp_path / f"{name}.regexp"
        path.write_text(text)
        main.append(f"{name} = regexp:{path}")
    (tmp_path / "main.cf").write_text("\n".join(main) + "\n")
    (tmp_path / "master.cf").write_text("")
    cfg = client_config(load(tmp_path), program)
    return (SmtpSettings.from_config(cfg, program=program),
            Resolver.from_config(cfg, program=program, lifetime=1.0))


async def _load(qid: str) -> bytes:
    return h.CONTENT


def deliver(sink: SmtpSink, settings: SmtpSettings, *rcpts: str):
    out = {}

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            agent = SmtpAgent(settings, Resolver([("127.0.0.1", 9)]), _load, ConnectionCache(0))
            out["status"] = await agent.deliver(h.request(f"[127.0.0.1]:{port}", *rcpts))
            n.cancel_scope.cancel()
    with h.capture_logs() as logs:
        trio.run(main)
    return out["status"], logs


REJECT = {"gone@example.org": "550 5.1.1 <gone@example.org>: User unknown"}


def test_smtp_reply_filter_rewrites_a_reply_line_before_it_is_read(tmp_path):
    s, _ = configure(tmp_path, smtp_reply_filter="/^550 5\\.1\\.1 (.*)/ 450 4.1.1 $1\n")
    status, _ = deliver(SmtpSink(rcpt=REJECT), s, "gone@example.org", "bob@example.org")
    gone, bob = status.results
    assert (gone.status, gone.dsn) == ("deferred", "4.1.1")
    assert gone.reason == ("host 127.0.0.1[127.0.0.1] said: 450 4.1.1 <gone@example.org>: "
                           "User unknown (in reply to RCPT TO command)")
    assert gone.diagnostic == "smtp; 450 4.1.1 <gone@example.org>: User unknown"
    assert bob.status == "sent"


def test_smtp_reply_filter_turns_garbage_into_a_reply_line(tmp_path):
    # postconf(5)'s example: garbage becomes a line of a multi-line reply.
    s, _ = configure(tmp_path, smtp_reply_filter=(
        "!/^([2-5][0-9][0-9]($|[- ]))/ 250-filler for garbage\n"))
    sink = SmtpSink(greeting="220-sink.test\r\nthis is no reply line\r\n220 sink.test ESMTP")
    status, _ = deliver(sink, s, "bob@example.org")
    assert status.results[0].status == "sent"


def test_without_smtp_reply_filter_the_reply_stands(tmp_path):
    s, _ = configure(tmp_path)
    status, _ = deliver(SmtpSink(rcpt=REJECT), s, "gone@example.org")
    assert (status.results[0].status, status.results[0].dsn) == ("bounced", "5.1.1")


def test_smtp_delivery_status_filter(tmp_path):
    s, _ = configure(tmp_path, smtp_delivery_status_filter=(
        "/^5\\.1\\.1 (.*)/ 4.1.9 deferred: $1\n"
        "/^2\\.0\\.0 (.*queued as.*)/ 2.6.0 filtered: $1\n"))
    status, logs = deliver(SmtpSink(rcpt=REJECT), s, "gone@example.org", "bob@example.org")
    gone, bob = status.results
    assert (gone.status, gone.dsn) == ("deferred", "4.1.9")
    assert gone.reason.startswith("deferred: host 127.0.0.1[127.0.0.1] said: 550 5.1.1")
    assert gone.diagnostic == "smtp; 550 5.1.1 <gone@example.org>: User unknown"
    assert (bob.status, bob.dsn, bob.reason) == ("sent", "2.6.0",
                                                 "filtered: 250 2.0.0 Ok: queued as Q1")
    lines = h.lines(logs, "status")
    assert lines[1].endswith("dsn=2.6.0, status=sent (filtered: 250 2.0.0 Ok: queued as Q1)")


def test_default_delivery_status_filter_is_the_default(tmp_path):
    s, _ = configure(tmp_path, default_delivery_status_filter="/^5\\.1\\.1 (.*)/ 5.1.2 $1\n")
    status, _ = deliver(SmtpSink(rcpt=REJECT), s, "gone@example.org")
    assert (status.results[0].status, status.results[0].dsn) == ("bounced", "5.1.2")


def test_smtp_delivery_status_filter_may_not_turn_failure_into_success(tmp_path):
    s, _ = configure(tmp_path, smtp_delivery_status_filter="/^5\\.1\\.1 (.*)/ 2.0.0 x\n")
    status, logs = deliver(SmtpSink(rcpt=REJECT), s, "gone@example.org")
    assert (status.results[0].status, status.results[0].dsn) == ("bounced", "5.1.1")
    assert "smtp_delivery_status_filter: bad status code: 2.0.0 x" in h.lines(logs)


def test_lmtp_delivery_status_filter_warns_under_its_own_name(tmp_path):
    s, _ = configure(tmp_path, "lmtp", lmtp_delivery_status_filter="/^2/ 5.0.0 x\n")
    assert s.status_filter is not None and s.status_filter.title == "lmtp_delivery_status_filter"


ZONE = {
    "f.test": {"MX": [(10, "mx.f.test")]},
    "mx.f.test": {"A": ["127.0.0.1"], "AAAA": ["::1"]},
    "g.test": {"MX": [(10, "mx.g.test")]},
    "mx.g.test": {"A": ["127.0.0.1"]},
}


@pytest.fixture(scope="module")
def dns():
    with DnsServer(ZONE) as server:
        yield server


def targets(tmp_path, dns, table: str, domain: str):
    s, resolver = configure(tmp_path, dns_nameservers=dns.spec, smtp_dns_reply_filter=table)
    agent = SmtpAgent(s, resolver, _load)
    with h.capture_logs() as logs:
        try:
            found = trio.run(agent.targets, NextHop(domain, 25))
        except RouteError as e:
            return e, h.lines(logs)
    return [t.address for t in found], h.lines(logs)


def test_smtp_dns_reply_filter_drops_matching_records(tmp_path, dns):
    found, logs = targets(tmp_path, dns, "/^mx\\.f\\.test\\.\\s+[0-9]+\\s+IN\\s+AAAA\\s/ IGNORE\n",
                          "f.test")
    assert found == ["127.0.0.1"]
    assert "ignoring DNS RR: mx.f.test. 60 IN AAAA ::1" in logs


def test_smtp_dns_reply_filter_sees_mx_records_with_preference(tmp_path, dns):
    e, logs = targets(tmp_path, dns, "/^g\\.test\\. 60 IN MX 10 mx\\.g\\.test\\.$/ ignore\n",
                      "g.test")
    assert isinstance(e, RouteError)
    assert (e.status, e.reason) == ("4.7.0", "Error looking up name=g.test type=MX: "
                                             "DNS reply filter drops all results")
    assert "ignoring DNS RR: g.test. 60 IN MX 10 mx.g.test." in logs


def test_smtp_dns_reply_filter_unknown_action(tmp_path, dns):
    e, logs = targets(tmp_path, dns, "/ IN MX / REJECT\n", "g.test")
    assert isinstance(e, RouteError)
    assert (e.status, e.reason) == ("4.4.3", "Error looking up name=g.test type=MX: "
                                             "Invalid DNS reply filter syntax")
    assert 'smtp_dns_reply_filter: unknown DNS filter action: "REJECT"' in logs


def test_smtp_dns_reply_filter_all_addresses_dropped(tmp_path, dns):
    e, _ = targets(tmp_path, dns, "/^mx\\.g\\.test\\. .* IN A / IGNORE\n", "g.test")
    assert isinstance(e, RouteError)
    assert (e.status, e.reason) == ("4.7.0", "Error looking up name=mx.g.test type=A: "
                                             "DNS reply filter drops all results")
