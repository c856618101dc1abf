"""The smtp delivery agent in-process, over real loopback sockets, against a scripted sink."""

from __future__ import annotations

import dataclasses
import runpy
import re
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.routing import NextHop
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings
from mailsys.runtime import smtp_client_io
from mailsys.runtime.smtp_client_io import ConnectionCache

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402

# The tests directories are not packages: the shared helpers are loaded by path.
h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))

DnsServer, SmtpSink = h.dnsserver.DnsServer, h.smtpsink.SmtpSink
LINE = re.compile(r"^4F2A1C3B7D: to=<[^>]+>, relay=[^,]+, (conn_use=\d+, )?delay=[\d.]+, "
                  r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=\d\.\d+\.\d+, status=\w+ \(.*\)$")


def settings(own=(), cache=0.0, session_limit=2, **timeouts) -> SmtpSettings:
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    t["smtp_rset_timeout"] = 5.0
    t.update(timeouts)
    return SmtpSettings(helo_name="mx.example.test", timeouts=t, own=frozenset(own),
                        cache_time_limit=cache, mx_session_limit=session_limit)


def agent(s: SmtpSettings, dns: DnsServer | None = None, content: bytes = h.CONTENT) -> SmtpAgent:
    async def load(qid: str) -> bytes:
        return content
    resolver = Resolver([("127.0.0.1", dns.port)] if dns else [("127.0.0.1", 9)], lifetime=1.0)
    return SmtpAgent(s, resolver, load, ConnectionCache(s.cache_time_limit))


def run_with_sink(sink: SmtpSink, body):
    """trio.run(body(port)) with the sink serving on a free loopback port."""
    out = {}

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            out["value"] = await body(port)
            n.cancel_scope.cancel()
    trio.run(main)
    return out["value"]


def deliver(sink: SmtpSink, *rcpts: str, s: SmtpSettings | None = None):
    async def body(port):
        return await agent(s or settings()).deliver(h.request(f"[127.0.0.1]:{port}", *rcpts))
    with h.capture_logs() as logs:
        status = run_with_sink(sink, body)
    return status, logs


def two_deliveries(sink: SmtpSink, pause: float = 0.0, s: SmtpSettings | None = None):
    """Two requests to one next hop through an agent with a running connection cache."""
    async def body(port):
        a = agent(s or settings(cache=5.0))
        async with trio.open_nursery() as n:
            n.start_soon(a.cache.run)
            first = await a.deliver(h.request(f"[127.0.0.1]:{port}", "bob@example.org"))
            await trio.sleep(pause)
            second = await a.deliver(h.request(f"[127.0.0.1]:{port}", "carol@example.org",
                                               qid="4F2A1C3B7E"))
            n.cancel_scope.cancel()
        return first, second
    with h.capture_logs() as logs:
        first, second = run_with_sink(sink, body)
    return first, second, logs


def test_delivery_with_pipelining():
    sink = SmtpSink(pipelining=True)
    status, logs = deliver(sink, "bob@example.org", "carol@example.org")
    assert [r.status for r in status.results] == ["sent", "sent"]
    assert [r.index for r in status.results] == [0, 1]
    (msg,) = sink.messages
    assert msg.sender == "alice@example.com"
    assert msg.rcpts == ["bob@example.org", "carol@example.org"]
    assert msg.data == h.CONTENT                     # dot-stuffed on the wire, unstuffed here
    r = status.results[0]
    assert r.dsn == "2.0.0" and r.reason == "250 2.0.0 Ok: queued as Q1"
    assert re.fullmatch(r"127\.0\.0\.1\[127\.0\.0\.1\]:\d+", r.relay)
    assert r.remote_mta == "127.0.0.1" and r.diagnostic == "smtp; 250 2.0.0 Ok: queued as Q1"
    lines = h.lines(logs, "status")
    assert len(lines) == 2 and all(LINE.match(x) for x in lines), lines
    assert lines[0].startswith("4F2A1C3B7D: to=<bob@example.org>, relay=127.0.0.1[127.0.0.1]:")
    assert lines[0].endswith("dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as Q1)")
    # Pipelined: MAIL, both RCPTs and DATA went in one write, before any reply.
    assert sink.commands[1:5] == ["MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.org>",
                                  "RCPT TO:<carol@example.org>", "DATA"]


@pytest.mark.parametrize("dsn", [False, True])
def test_a_server_announcing_dsn_reports_success_itself(dsn):
    # Postfix smtp_rcpt_done() (src/smtp/smtp_rcpt.c): after a server that
    # announced DSN took the recipient, NOTIFY=SUCCESS is its business; no
    # "relayed" success notice is owed from here.
    status, _ = deliver(SmtpSink(dsn=dsn), "bob@example.org")
    (r,) = status.results
    assert (r.status, r.success_passed) == ("sent", dsn)


def test_delivery_without_pipelining_and_helo_fallback():
    sink = SmtpSink(pipelining=False, ehlo_refused=True)
    status, _ = deliver(sink, "bob@example.org")
    assert status.results[0].status == "sent"
    assert sink.commands[0] == "EHLO mx.example.test" and sink.commands[1] == "HELO mx.example.test"
    assert sink.commands[-1] == "QUIT"


def test_recipient_replies_map_to_deferred_and_bounced():
    sink = SmtpSink(rcpt={
        "gone@example.org": "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown",
        "later@example.org": "450 4.2.1 <later@example.org>: try again later"})
    status, logs = deliver(sink, "bob@example.org", "gone@example.org", "later@example.org")
    ok, gone, later = status.results
    assert ok.status == "sent"
    assert (gone.status, gone.dsn) == ("bounced", "5.1.1")
    assert gone.reason == ("host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <gone@example.org>: "
                           "Recipient address rejected: User unknown (in reply to RCPT TO command)")
    assert gone.diagnostic == ("smtp; 550 5.1.1 <gone@example.org>: Recipient address rejected: "
                               "User unknown")
    assert (later.status, later.dsn) == ("deferred", "4.2.1")
    assert sink.messages[0].rcpts == ["bob@example.org"]
    lines = h.lines(logs, "status")
    assert "dsn=5.1.1, status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1" in lines[1]


def test_rejected_sender_defers_everyone_with_the_mail_reply():
    sink = SmtpSink(mail="451 4.3.0 Error: queue file write error")
    status, _ = deliver(sink, "bob@example.org", "carol@example.org")
    assert [(r.status, r.dsn) for r in status.results] == [("deferred", "4.3.0")] * 2
    assert status.results[0].reason.endswith("(in reply to MAIL FROM command)")
    assert sink.messages == []


def test_connection_refused_tries_the_next_mx_then_defers():
    sink = SmtpSink()
    zone = {"example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.2"]},       # nothing listens there: refused
            "mx2.example.org": {"A": ["127.0.0.1"]}}
    with DnsServer(zone) as dns:
        async def body(port):
            return await agent(settings(), dns).deliver(h.request(f"example.org:{port}"))
        with h.capture_logs() as logs:
            first = run_with_sink(sink, body)
    assert first.results[0].status == "sent"
    assert first.results[0].relay.startswith("mx2.example.org[127.0.0.1]:")
    text = h.lines(logs)
    assert any(re.fullmatch(r"connect to mx1\.example\.org\[127\.0\.0\.2\]:\d+: Connection refused", t)
               for t in text), text

    # Every host refuses: deferred 4.4.1 with the last reason, relay=none.
    zone["mx2.example.org"] = {"A": ["127.0.0.3"]}
    with DnsServer(zone) as dns:
        async def body2(port):
            return await agent(settings(), dns).deliver(h.request(f"example.org:{port}"))
        with h.capture_logs() as logs:
            status = run_with_sink(SmtpSink(), body2)
    r = status.results[0]
    assert (r.status, r.dsn, r.relay) == ("deferred", "4.4.1", "none")
    assert re.fullmatch(r"connect to mx2\.example\.org\[127\.0\.0\.3\]:\d+: Connection refused", r.reason)
    assert status.dead_destination
    line = h.lines(logs, "status")[0]
    assert ", relay=none, " in line and "status=deferred (connect to mx2.example.org" in line


def two_mx(first: SmtpSink, second: SmtpSink, *rcpts: str, **settings_kw):
    """Deliver to example.org whose MX hosts are first (127.0.0.1) and second (127.0.0.2)."""
    zone = {"example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.1"]}, "mx2.example.org": {"A": ["127.0.0.2"]}}

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(first.serve)
            await n.start(second.serve, "127.0.0.2", port)
            status = await agent(settings(**settings_kw), dns).deliver(
                h.request(f"example.org:{port}", *rcpts))
            n.cancel_scope.cancel()
        return status
    with DnsServer(zone) as dns, h.capture_logs() as logs:
        status = trio.run(main)
    return status, logs


def test_a_4xx_greeting_moves_on_to_the_next_host():
    busy = SmtpSink(greeting="421 4.7.0 busy.test Error: too many connections")
    good = SmtpSink()
    status, logs = two_mx(busy, good, "bob@example.org")
    assert status.results[0].status == "sent"
    assert status.results[0].relay.startswith("mx2.example.org[127.0.0.2]:")
    assert busy.sessions == 1 and good.sessions == 1
    assert any("host mx1.example.org[127.0.0.1] refused to talk to me: 421 4.7.0 busy.test "
               "Error: too many connections" in t for t in h.lines(logs))


def test_a_4xx_recipient_is_left_for_the_next_mx():
    first = SmtpSink(rcpt={"later@example.org": "450 4.2.0 <later@example.org>: try later",
                           "gone@example.org": "550 5.1.1 <gone@example.org>: unknown"})
    second = SmtpSink()
    status, logs = two_mx(first, second, "bob@example.org", "later@example.org", "gone@example.org")
    bob, later, gone = status.results
    assert bob.status == "sent" and bob.relay.startswith("mx1.example.org[127.0.0.1]:")
    assert later.status == "sent" and later.relay.startswith("mx2.example.org[127.0.0.2]:")
    assert gone.status == "bounced" and gone.relay.startswith("mx1.example.org")
    assert [m.rcpts for m in first.messages] == [["bob@example.org"]]
    assert [m.rcpts for m in second.messages] == [["later@example.org"]]
    assert not status.dead_destination


def test_the_last_mx_has_the_last_word():
    first = SmtpSink(rcpt={"later@example.org": "450 4.2.0 <later@example.org>: first says later"})
    second = SmtpSink(rcpt={"later@example.org": "451 4.3.0 <later@example.org>: second says later"})
    status, _ = two_mx(first, second, "later@example.org")
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.3.0")
    assert r.reason.startswith("host mx2.example.org[127.0.0.2] said: 451 4.3.0")
    # With smtp_mx_session_limit = 1 the first server's answer stands.
    first.sessions = second.sessions = 0
    status, _ = two_mx(first, second, "later@example.org", session_limit=1)
    assert status.results[0].reason.startswith("host mx1.example.org[127.0.0.1] said: 450 4.2.0")
    assert (first.sessions, second.sessions) == (1, 0)


def test_no_second_server_after_the_content_was_sent():
    first, second = SmtpSink(drop="DOT"), SmtpSink()
    status, _ = two_mx(first, second, "bob@example.org")
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert "message may be sent more than once" in r.reason
    assert second.sessions == 0


def test_a_bracketed_destination_on_an_address_of_ours_is_tried():
    # As Postfix 3.7 delivers to relayhost = [127.0.0.1]:2526 with
    # inet_interfaces = 127.0.0.1 (a content filter's re-injection port is
    # the same case): only a server answering EHLO with our own name is a
    # loop (test_a_server_with_our_own_name_is_a_loop).
    sink = SmtpSink()

    async def body(port):
        ours = agent(settings(own={("127.0.0.1", port)}))
        return await ours.deliver(h.request(f"[127.0.0.1]:{port}"))
    status = run_with_sink(sink, body)
    assert status.results[0].status == "sent"
    assert sink.sessions == 1


def test_connection_reuse_logs_conn_use():
    sink = SmtpSink()
    first, second, logs = two_deliveries(sink)
    assert first.results[0].status == second.results[0].status == "sent"
    assert sink.sessions == 1 and len(sink.messages) == 2
    assert "RSET" in sink.commands
    lines = h.lines(logs, "status")
    assert "conn_use" not in lines[0]
    assert ", conn_use=2, delay=" in lines[1], lines[1]


def test_a_reused_connection_sends_rset_in_the_pipelined_group():
    sink = SmtpSink(pipelining=True)
    first, second, logs = two_deliveries(sink)
    assert first.results[0].status == second.results[0].status == "sent"
    assert sink.sessions == 1 and [m.rcpts for m in sink.messages] == [["bob@example.org"],
                                                                       ["carol@example.org"]]
    # One write: MAIL, RCPT and DATA had arrived behind the RSET before it was answered.
    assert sink.behind_rset == [["MAIL FROM:<alice@example.com>", "RCPT TO:<carol@example.org>",
                                 "DATA"]]
    assert sink.commands.count("RSET") == 1
    assert ", conn_use=2, delay=" in h.lines(logs, "status")[1]


def test_a_peer_without_pipelining_gets_rset_on_its_own():
    sink = SmtpSink(pipelining=False)
    first, second, logs = two_deliveries(sink)
    assert first.results[0].status == second.results[0].status == "sent"
    assert sink.sessions == 1 and len(sink.messages) == 2
    assert sink.behind_rset == [[]]             # nothing came before the RSET was answered
    i = sink.commands.index("RSET")
    assert sink.commands[i + 1:i + 4] == ["MAIL FROM:<alice@example.com>",
                                          "RCPT TO:<carol@example.org>", "DATA"]


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("peer", [
    dict(rset="421 4.4.2 sink.test Error: timeout exceeded"),
    dict(rset="554 5.5.1 Error: no"),
    dict(drop="RSET"),
    dict(close_after_message=True),
])
def test_a_stale_cached_connection_is_replaced_without_a_trace(peer, pipelining):
    sink = SmtpSink(pipelining=pipelining, **peer)
    first, second, logs = two_deliveries(sink, pause=0.05)
    assert [r.status for r in (*first.results, *second.results)] == ["sent", "sent"]
    assert not second.dead_destination
    # The message went once, over a fresh connection; the stale one carried none of it.
    assert sink.sessions == 2 and [m.rcpts for m in sink.messages] == [["bob@example.org"],
                                                                       ["carol@example.org"]]
    # After a 5xx to the pipelined RSET the sink may still read the DATA of
    # the group before it notices the close; nothing else reaches DATA twice.
    refused = pipelining and peer.get("rset", "").startswith("5")
    assert sink.commands.count("DATA") in ((2, 3) if refused else (2,))
    # Nothing but the two status lines: no warning, no "lost connection".
    everything = h.lines(logs)
    assert everything == h.lines(logs, "status") and len(everything) == 2, everything
    assert not any("conn_use" in line for line in everything)


def test_a_cached_connection_that_does_not_answer_rset_is_replaced():
    sink = SmtpSink(stall="RSET")
    s = settings(cache=5.0, smtp_rset_timeout=0.3)
    first, second, logs = two_deliveries(sink, s=s)
    assert [r.status for r in (*first.results, *second.results)] == ["sent", "sent"]
    assert sink.sessions == 2 and len(sink.messages) == 2
    assert len(h.lines(logs)) == 2


def test_cached_connection_is_closed_after_the_time_limit():
    sink = SmtpSink()

    async def body(port):
        a = agent(settings(cache=0.2))
        async with trio.open_nursery() as n:
            n.start_soon(a.cache.run)
            await a.deliver(h.request(f"[127.0.0.1]:{port}"))
            assert len(a.cache) == 1
            await trio.sleep(0.6)
            assert len(a.cache) == 0
            await a.deliver(h.request(f"[127.0.0.1]:{port}", qid="4F2A1C3B7E"))
            n.cancel_scope.cancel()
    run_with_sink(sink, body)
    assert sink.sessions == 2
    assert sink.commands.count("QUIT") >= 1


def test_a_peer_that_stops_answering_times_out_per_stage():
    sink = SmtpSink(pipelining=False, stall="RCPT")
    status, logs = deliver(sink, "bob@example.org", s=settings(smtp_rcpt_timeout=0.3))
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert r.reason == "conversation with 127.0.0.1[127.0.0.1] timed out while sending RCPT TO"

    sink = SmtpSink(stall="greeting")
    status, _ = deliver(sink, "bob@example.org", s=settings(smtp_helo_timeout=0.3))
    assert status.results[0].reason == ("conversation with 127.0.0.1[127.0.0.1] timed out while "
                                        "receiving the initial server greeting")


def test_lost_connection_after_the_dot_defers_for_a_retry():
    sink = SmtpSink(drop="DOT")
    status, _ = deliver(sink, "bob@example.org")
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert r.reason == ("lost connection with 127.0.0.1[127.0.0.1] while sending end of data -- "
                        "message may be sent more than once")


def test_size_limit_of_the_server_bounces_without_sending():
    sink = SmtpSink(size=10)
    status, _ = deliver(sink, "bob@example.org")
    r = status.results[0]
    assert (r.status, r.dsn) == ("bounced", "5.3.4")
    assert r.reason.startswith("message size ") and "exceeds size limit 10 of server 127.0.0.1[127.0.0.1]" in r.reason
    assert sink.messages == [] and not any(c.startswith("MAIL") for c in sink.commands)


def test_targets_follow_mx_preference():
    zone = {"example.org": {"MX": [(20, "b.example.org"), (10, "a.example.org")]},
            "a.example.org": {"A": ["192.0.2.1"]}, "b.example.org": {"A": ["192.0.2.2"]}}
    with DnsServer(zone) as dns:
        targets = trio.run(agent(settings(), dns).targets, NextHop("example.org", 25))
    assert [(t.host, t.address, t.port) for t in targets] == [("a.example.org", "192.0.2.1", 25),
                                                               ("b.example.org", "192.0.2.2", 25)]


def test_no_answer_to_the_final_dot_times_out_and_may_duplicate():
    sink = SmtpSink(stall="DOT")
    status, _ = deliver(sink, "bob@example.org", s=settings(smtp_data_done_timeout=0.3))
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert r.reason == ("conversation with 127.0.0.1[127.0.0.1] timed out while sending end of "
                        "data -- message may be sent more than once")


def test_interop_with_aiosmtpd():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.envelopes = []

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("nobody@"):
                return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            self.envelopes.append(envelope)
            return "250 2.0.0 Message accepted for delivery"

    handler = Handler()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        status = trio.run(agent(settings()).deliver,
                          h.request(f"[127.0.0.1]:{port}", "bob@example.org", "nobody@example.org"))
    finally:
        controller.stop()
    ok, nobody = status.results
    assert (ok.status, ok.reason) == ("sent", "250 2.0.0 Message accepted for delivery")
    assert (nobody.status, nobody.dsn) == ("bounced", "5.1.1")
    (env,) = handler.envelopes
    assert env.mail_from == "alice@example.com" and env.rcpt_tos == ["bob@example.org"]
    assert env.content.replace(b"\r\n", b"\n") == h.CONTENT.replace(b"\r\n", b"\n")


def test_a_cached_connection_the_server_closed_is_replaced():
    sink = SmtpSink(close_after_message=True)
    first, second, logs = two_deliveries(sink, pause=0.05)
    assert first.results[0].status == second.results[0].status == "sent"
    assert sink.sessions == 2 and len(sink.messages) == 2
    assert not any("conn_use" in line for line in h.lines(logs, "status"))


def test_an_address_smtp_cannot_carry_is_deferred_not_lost():
    sink = SmtpSink()
    status, _ = deliver(sink, "bob@example.org\r\nRCPT TO:<evil@example.org>")
    r = status.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.3.0")
    assert not any("evil" in c for c in sink.commands) and sink.messages == []


def test_a_large_message_goes_through_in_pieces():
    line = b"." + b"x" * 98 + b"\r\n"
    content = b"Subject: big\r\n\r\n" + line * 20000          # 2 MB, every line dot-stuffed
    sink = SmtpSink()

    async def body(port):
        return await agent(settings(), content=content).deliver(h.request(f"[127.0.0.1]:{port}"))
    status = run_with_sink(sink, body)
    assert status.results[0].status == "sent"
    assert sink.messages[0].data == content


def test_a_refusing_host_is_not_asked_twice_and_the_answer_stands():
    zone = {"example.org": {"MX": [(10, "mx1.example.org"), (20, "mx2.example.org"),
                                   (30, "mx3.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.3"]},          # refused
            "mx2.example.org": {"A": ["127.0.0.1"]},          # defers one recipient
            "mx3.example.org": {"A": ["127.0.0.4"]}}          # refused
    sink = SmtpSink(rcpt={"later@example.org": "450 4.2.0 <later@example.org>: later"})

    async def body(port):
        return await agent(settings(session_limit=0), dns).deliver(
            h.request(f"example.org:{port}", "bob@example.org", "later@example.org"))
    with DnsServer(zone) as dns, h.capture_logs() as logs:
        status = run_with_sink(sink, body)
    bob, later = status.results
    assert bob.status == "sent"
    assert (later.status, later.dsn) == ("deferred", "4.2.0")
    assert later.reason.startswith("host mx2.example.org[127.0.0.1] said: 450 4.2.0")
    refused = [t for t in h.lines(logs) if t.startswith("connect to ")]
    assert [t.split("[")[0] for t in refused] == ["connect to mx1.example.org",
                                                   "connect to mx3.example.org"]


def deliver_as_port_25(sink: SmtpSink, s: SmtpSettings, monkeypatch):
    """deliver(), with the sink's free port standing in for port 25, the
    only one where Postfix looks for its own name in the server's replies."""
    async def body(port):
        monkeypatch.setattr(smtp_client_io, "LOOP_DETECT_PORT", port)
        status = await agent(s).deliver(h.request(f"[127.0.0.1]:{port}", "bob@example.org"))
        return status, port
    with h.capture_logs() as logs:
        status, port = run_with_sink(sink, body)
    return status, h.lines(logs), f"host 127.0.0.1[127.0.0.1]:{port}"


def test_a_server_with_our_own_name_is_a_loop(monkeypatch):
    sink = SmtpSink()
    s = dataclasses.replace(settings(), myhostname="SINK.test")
    status, lines, host = deliver_as_port_25(sink, s, monkeypatch)
    r = status.results[0]
    assert (r.status, r.dsn) == ("bounced", "5.4.6")
    assert [t for t in lines if t.startswith("host ")] == [
        f"{host} greeted me with my own hostname SINK.test",
        f"{host} replied to HELO/EHLO with my own hostname SINK.test"], lines
    assert r.reason == f"mail for [{host.split('[')[1]} loops back to myself"
    assert sink.messages == [] and sink.commands[-1] == "QUIT"


def test_our_own_name_in_greeting_and_helo_reply_only_warns(monkeypatch):
    # Postfix reads the server's name from an EHLO reply only: after HELO
    # the greeting's warning is all, and the mail goes.
    sink = SmtpSink(ehlo_refused=True)
    s = dataclasses.replace(settings(), myhostname="sink.TEST")
    status, lines, host = deliver_as_port_25(sink, s, monkeypatch)
    assert status.results[0].status == "sent"
    assert [t for t in lines if t.startswith("host ")] == [
        f"{host} greeted me with my own hostname sink.TEST"], lines
    assert len(sink.messages) == 1


def test_our_own_name_on_a_port_other_than_25_is_no_loop():
    sink = SmtpSink()
    s = dataclasses.replace(settings(), myhostname="sink.test")
    status, logs = deliver(sink, "bob@example.org", s=s)
    assert status.results[0].status == "sent"
    assert not [t for t in h.lines(logs) if "my own hostname" in t]
    assert len(sink.messages) == 1


def test_smtp_bind_address():
    s = dataclasses.replace(settings(), bind={socket.AF_INET: "127.0.0.5"})
    sink = SmtpSink()
    status, _ = deliver(sink, "bob@example.org", s=s)
    assert status.results[0].status == "sent"
    assert sink.peers == ["127.0.0.5"]


def test_connect_timeout():
    # A listener with a full backlog that never accepts: the kernel drops the SYN.
    with socket.socket() as full, socket.socket() as first:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        first.connect(("127.0.0.1", port))
        status = trio.run(agent(settings(smtp_connect_timeout=0.3)).deliver,
                          h.request(f"[127.0.0.1]:{port}"))
    r = status.results[0]
    assert (r.status, r.dsn, r.relay) == ("deferred", "4.4.1", "none")
    assert r.reason == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection timed out"


def test_a_bad_next_hop_defers_every_time_and_a_good_one_still_goes():
    sink = SmtpSink()

    async def body(port):
        a = agent(settings(cache=5.0))
        out = []
        async with trio.open_nursery() as n:
            n.start_soon(a.cache.run)
            for hop in ("[127.0.0.1", "[127.0.0.1", f"[127.0.0.1]:{port}", f"[127.0.0.1]:{port}"):
                out.append(await a.deliver(h.request(hop)))
            n.cancel_scope.cancel()
        return out
    bad1, bad2, good1, good2 = run_with_sink(sink, body)
    for bad in (bad1, bad2):
        r = bad.results[0]
        assert (r.status, r.dsn) == ("deferred", "4.3.5") and bad.dead_destination
        assert r.reason.startswith("mail transport unavailable: missing \"]\"")
    assert good1.results[0].status == good2.results[0].status == "sent"
    assert sink.sessions == 1                 # the same cache key both times


# -- the same agent as the lmtp program ----------------------------------------------------

def lmtp_deliver(sink: SmtpSink, *rcpts: str):
    s = dataclasses.replace(settings(), lmtp=True, myhostname="mx.example.test")

    async def body(port):
        return await agent(s).deliver(h.request(f"inet:127.0.0.1:{port}", *rcpts,
                                                transport="lmtp"))
    with h.capture_logs() as logs:
        status = run_with_sink(sink, body)
    return status, logs


def test_lmtp_each_recipient_by_its_own_reply_after_the_dot():
    sink = SmtpSink(lmtp=True, rcpt={"c@example.org": "550 5.1.1 <c@example.org> unknown"},
                    rcpt_dot={"b@example.org": "452 4.2.2 <b@example.org> Mailbox is full"})
    status, logs = lmtp_deliver(sink, "a@example.org", "b@example.org", "c@example.org")
    a, b, c = status.results
    assert sink.commands[0] == "LHLO mx.example.test"
    assert (a.status, a.reason) == ("sent", "250 2.0.0 <a@example.org> Saved")
    assert (b.status, b.dsn, b.reason) == (
        "deferred", "4.2.2", "host 127.0.0.1[127.0.0.1] said: 452 4.2.2 <b@example.org> Mailbox "
        "is full (in reply to end of DATA command)")
    assert (c.status, c.dsn) == ("bounced", "5.1.1")
    assert not status.dead_destination
    assert all(LINE.match(line) for line in h.lines(logs, "status")), logs


def test_lmtp_lost_connection_between_the_replies_keeps_the_answered_ones():
    sink = SmtpSink(lmtp=True, rcpt_dot={"b@example.org": "DROP"})
    status, _ = lmtp_deliver(sink, "a@example.org", "b@example.org", "c@example.org")
    a, b, c = status.results
    assert (a.status, a.reason) == ("sent", "250 2.0.0 <a@example.org> Saved")
    for r in (b, c):
        assert (r.status, r.dsn, r.reason) == (
            "deferred", "4.4.2", "lost connection with 127.0.0.1[127.0.0.1] while sending end "
            "of data -- message may be sent more than once")
    assert sink.sessions == 1                # nobody else gets it in this attempt


def fallback_delivery(zone, nexthop, own=()):
    """Deliver to nexthop (with the sink's {port}) with smtp_fallback_relay = [127.0.0.1]:port."""
    sink = SmtpSink()
    with DnsServer(zone) as dns:
        async def body(port):
            s = dataclasses.replace(settings(own=own), fallback_relay=(f"[127.0.0.1]:{port}",))
            return await agent(s, dns).deliver(h.request(nexthop.format(port=port)))
        with h.capture_logs() as logs:
            status = run_with_sink(sink, body)
    return status.results[0], sink, h.lines(logs)


def test_fallback_relay_for_a_destination_that_cannot_be_found():
    r, sink, _ = fallback_delivery({"gone.example": h.dnsserver.NXDOMAIN}, "gone.example:{port}")
    assert (r.status, len(sink.messages)) == ("sent", 1)
    assert r.relay.startswith("127.0.0.1[127.0.0.1]:")


def test_fallback_relay_for_a_destination_that_cannot_be_reached():
    zone = {"example.org": {"MX": [(10, "mx1.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.2"]}}            # refused
    r, sink, lines = fallback_delivery(zone, "example.org:{port}")
    assert (r.status, len(sink.messages)) == ("sent", 1)
    assert any(t.startswith("connect to mx1.example.org[127.0.0.2]:") for t in lines)


def test_no_fallback_relay_for_a_destination_we_are_mx_for():
    # Postfix 2.2+: "will not use the fallback relays for destinations that
    # it is MX host for" (a loop between the MX hosts and the fallback).
    zone = {"example.org": {"MX": [(10, "mx1.example.org"), (20, "me.example.org")]},
            "mx1.example.org": {"A": ["127.0.0.2"]}, "me.example.org": {"A": ["127.0.0.3"]}}
    r, sink, _ = fallback_delivery(zone, "example.org:{port}", own=("127.0.0.3",))
    assert (r.status, r.dsn, sink.messages) == ("deferred", "4.4.1", [])


@pytest.mark.parametrize("discard, maps, line", [
    ((), (), None),
    (("Size", "dsn"), (), "discarding EHLO keywords: SIZE DSN"),      # Postfix's order
    (("pipelining",), (Table({"127.0.0.1": "silent-discard, size"}),), None),
])
def test_smtp_discard_ehlo_keywords(discard, maps, line):
    sink = SmtpSink(size=1000000)
    s = dataclasses.replace(settings(), discard_ehlo=discard, discard_maps=maps)
    status, logs = deliver(sink, "bob@example.org", s=s)
    assert status.results[0].status == "sent"
    mail = next(c for c in sink.commands if c.startswith("MAIL FROM:"))
    assert ("SIZE=" in mail) is (not discard and not maps)
    logged = [t for t in h.lines(logs) if t.startswith("discarding EHLO keywords")]
    assert logged == ([line] if line else [])


def test_smtp_never_send_ehlo():
    sink = SmtpSink()
    s = dataclasses.replace(settings(), send_ehlo=False)
    status, _ = deliver(sink, "bob@example.org", s=s)
    assert status.results[0].status == "sent"
    assert sink.commands[0] == "HELO mx.example.test"
