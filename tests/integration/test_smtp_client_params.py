"""smtp client parameters of the session and the envelope, in-process over
loopback: smtp_skip_quit_response, smtp_always_send_ehlo,
smtp_quote_rfc821_envelope, smtp_address_verify_target, smtp_tcp_port,
smtp_defer_if_no_mx_address_found, smtp_balance_inet_protocols,
smtp_cname_overrides_servername.

What Postfix 3.7 does was seen against a recording server: it hangs up
right after QUIT (skip yes) or waits for the 221 (no); it says HELO to a
greeting without ESMTP when smtp_always_send_ehlo = no; it sends
``MAIL FROM:<"john doe"@example.com>`` (quote yes) or
``MAIL FROM:<john doe@example.com>`` (no); with verification target data
it hangs up at the 354 and logs ``status=deliverable (354 go)``."""

from __future__ import annotations

import dataclasses
import time
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.config.client_program import client_config
from mailsys.config.loader import load
from mailsys.routing import NextHop, RouteError
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings
from mailsys.runtime.smtp_client_io import ConnectionCache

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
DnsServer, SmtpSink = h.dnsserver.DnsServer, h.smtpsink.SmtpSink


def settings(**kw) -> SmtpSettings:
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    t["smtp_rset_timeout"] = 5.0
    return SmtpSettings(helo_name="mx.example.test", timeouts=t, cache_time_limit=0, **kw)


def deliver_to(port_of, s: SmtpSettings, *rcpts: str, nexthop=None, **req):
    """Deliver one request through an agent; port_of(nursery) starts the server."""
    out = {}

    async def main():
        async with trio.open_nursery() as n:
            port = await port_of(n)
            agent = SmtpAgent(s, Resolver([("127.0.0.1", 9)], lifetime=1.0), _load,
                              ConnectionCache(0))
            hop = nexthop(port) if nexthop else f"[127.0.0.1]:{port}"
            out["status"] = await agent.deliver(h.request(hop, *rcpts, **req))
            await trio.sleep(0.05)       # the server sees what followed
            n.cancel_scope.cancel()
    with h.capture_logs() as logs:
        trio.run(main)
    return out["status"], logs


async def _load(qid: str) -> bytes:
    return h.CONTENT


def sink_server(sink: SmtpSink):
    async def start(n):
        return await n.start(sink.serve)
    return start


class QuitWatcher:
    """A server that, after QUIT, notes whether the client hangs up within
    a second before it answers 221 (as the live comparison did)."""

    def __init__(self) -> None:
        self.hung_up_first: bool | None = None

    async def start(self, n) -> int:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        n.start_soon(trio.serve_listeners, self._session, listeners)
        return listeners[0].socket.getsockname()[1]

    async def _session(self, stream) -> None:
        buf = b""

        async def line() -> bytes:
            nonlocal buf
            while b"\r\n" not in buf:
                data = await stream.receive_some(4096)
                if not data:
                    raise EOFError
                buf += data
            one, buf = buf.split(b"\r\n", 1)
            return one
        try:
            await stream.send_all(b"220 quit.test ESMTP\r\n")
            while True:
                cmd = (await line()).upper()
                if cmd.startswith(b"EHLO"):
                    await stream.send_all(b"250-quit.test\r\n250 PIPELINING\r\n")
                elif cmd == b"DATA":
                    await stream.send_all(b"354 go\r\n")
                    while await line() != b".":
                        pass
                    await stream.send_all(b"250 2.0.0 Ok: queued as Q1\r\n")
                elif cmd == b"QUIT":
                    self.hung_up_first = False
                    with trio.move_on_after(1):
                        if not await stream.receive_some(1):
                            self.hung_up_first = True
                    await stream.send_all(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    await stream.send_all(b"250 2.0.0 Ok\r\n")
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()


@pytest.mark.parametrize("skip", [True, False])
def test_smtp_skip_quit_response(skip):
    watcher = QuitWatcher()
    status, _ = deliver_to(watcher.start, settings(skip_quit_response=skip), "bob@example.org")
    assert status.results[0].status == "sent"
    assert watcher.hung_up_first is skip


@pytest.mark.parametrize("always, greeting, first", [
    (True, "220 sink.test hello", "EHLO mx.example.test"),
    (False, "220 sink.test hello", "HELO mx.example.test"),
    (False, "220 sink.test ESMTP Postfix", "EHLO mx.example.test"),
    (False, "220 ESMTP sink.test", "EHLO mx.example.test"),    # the first word counts too
    (False, "220-sink.test\r\n220 esmtp ready", "EHLO mx.example.test"),
])
def test_smtp_always_send_ehlo(always, greeting, first):
    sink = SmtpSink(greeting=greeting)
    status, _ = deliver_to(sink_server(sink), settings(always_send_ehlo=always), "bob@example.org")
    assert status.results[0].status == "sent"
    assert sink.commands[0] == first


@pytest.mark.parametrize("quote, sender, rcpt, mail, rcpt_line", [
    (True, '"john doe"@example.com', "a b@example.org",
     'MAIL FROM:<"john doe"@example.com>', 'RCPT TO:<"a b"@example.org>'),
    (False, '"john doe"@example.com', '"a b"@example.org',
     "MAIL FROM:<john doe@example.com>", "RCPT TO:<a b@example.org>"),
    (True, "alice@example.com", '"bob"@example.org',
     "MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.org>"),
])
def test_smtp_quote_rfc821_envelope(quote, sender, rcpt, mail, rcpt_line):
    sink = SmtpSink()
    status, logs = deliver_to(sink_server(sink), settings(quote_envelope=quote), rcpt,
                              sender=sender)
    assert status.results[0].status == "sent"
    assert sink.commands[1:3] == [mail, rcpt_line]
    # The log line keeps the queued address.
    assert h.lines(logs, "status")[0].startswith(f"4F2A1C3B7D: to=<{rcpt}>")


def test_smtp_address_verify_target_data():
    sink = SmtpSink()
    status, logs = deliver_to(sink_server(sink), settings(verify_target="data"),
                              "bob@example.org", probe=True)
    r = status.results[0]
    assert (r.status, r.dsn, r.reason) == ("sent", "2.0.0", "354 End data with <CR><LF>.<CR><LF>")
    assert sink.commands[1:] == ["MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.org>",
                                 "DATA"]           # no content, no QUIT: a hang-up at 354
    assert sink.messages == []
    assert h.lines(logs, "status")[0].endswith(
        "dsn=2.0.0, status=deliverable (354 End data with <CR><LF>.<CR><LF>)")


def test_smtp_address_verify_target_rcpt_is_the_default():
    sink = SmtpSink()
    status, logs = deliver_to(sink_server(sink), settings(), "bob@example.org", probe=True)
    assert status.results[0].reason == "250 2.1.5 Ok"
    assert sink.commands[1:4] == ["MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.org>",
                                  "RSET"]


def test_smtp_address_verify_target_data_refused():
    sink = SmtpSink(data="554 5.7.1 no thanks")
    status, _ = deliver_to(sink_server(sink), settings(verify_target="data"),
                           "bob@example.org", probe=True)
    r = status.results[0]
    assert (r.status, r.dsn) == ("bounced", "5.7.1")
    assert r.reason.endswith("554 5.7.1 no thanks (in reply to DATA command)")


def test_smtp_tcp_port_is_the_port_of_a_next_hop_without_one():
    sink = SmtpSink()

    async def start(n):
        return await n.start(sink.serve)
    holder = {}

    async def start_and_remember(n):
        holder["port"] = await start(n)
        return holder["port"]
    # The agent learns the port from its settings, as from smtp_tcp_port.
    out = {}

    async def main():
        async with trio.open_nursery() as n:
            port = await start_and_remember(n)
            agent = SmtpAgent(settings(default_port=port), Resolver([("127.0.0.1", 9)]), _load,
                              ConnectionCache(0))
            out["status"] = await agent.deliver(h.request("[127.0.0.1]", "bob@example.org"))
            n.cancel_scope.cancel()
    with h.capture_logs():
        trio.run(main)
    r = out["status"].results[0]
    assert r.status == "sent" and r.relay == f"127.0.0.1[127.0.0.1]:{holder['port']}"


def _cfg(tmp_path, main_cf: str, program: str = "smtp"):
    (tmp_path / "main.cf").write_text(main_cf)
    (tmp_path / "master.cf").write_text("")
    return client_config(load(tmp_path), program)


@pytest.mark.parametrize("program, main_cf, port", [
    ("smtp", "", 25),                       # "smtp": the services entry
    ("smtp", "smtp_tcp_port = 2526\n", 2526),
    ("smtp", "smtp_tcp_port = submission\n", 587),
    ("lmtp", "", 24),
    ("lmtp", "lmtp_tcp_port = 2003\nsmtp_tcp_port = 9\n", 2003),
])
def test_tcp_port_from_main_cf(tmp_path, program, main_cf, port):
    s = SmtpSettings.from_config(_cfg(tmp_path, main_cf, program), program=program)
    agent = SmtpAgent(s, Resolver([("127.0.0.1", 9)]), _load)
    assert agent.port == port


def test_settings_from_main_cf(tmp_path):
    s = SmtpSettings.from_config(_cfg(tmp_path, ""))
    assert (s.skip_quit_response, s.always_send_ehlo, s.quote_envelope, s.defer_no_mx_address,
            s.verify_target, s.balance_protocols, s.cname_overrides) == (
        True, True, True, False, "rcpt", True, False)
    s = SmtpSettings.from_config(_cfg(tmp_path, (
        "smtp_skip_quit_response = no\nsmtp_always_send_ehlo = no\n"
        "smtp_quote_rfc821_envelope = no\nsmtp_defer_if_no_mx_address_found = yes\n"
        "smtp_address_verify_target = data\nsmtp_balance_inet_protocols = no\n"
        "smtp_cname_overrides_servername = yes\n")))
    assert (s.skip_quit_response, s.always_send_ehlo, s.quote_envelope, s.defer_no_mx_address,
            s.verify_target, s.balance_protocols, s.cname_overrides) == (
        False, False, False, True, "data", False, True)
    # lmtp(8): its own twins, and no HELO heuristics (LMTP always says LHLO).
    s = SmtpSettings.from_config(_cfg(tmp_path, "lmtp_address_verify_target = data\n", "lmtp"),
                                 program="lmtp")
    assert (s.skip_quit_response, s.always_send_ehlo, s.verify_target) == (False, True, "data")


ZONE = {
    "lame.test": {"MX": [(10, "nowhere.lame.test")]},
    "nowhere.lame.test": {},
    # The best MX host has IPv6 addresses only, the backup one IPv4.
    "many.test": {"MX": [(10, "six.many.test"), (20, "four.many.test")]},
    "six.many.test": {"AAAA": ["::1", "::2", "::3", "::4", "::5"]},
    "four.many.test": {"A": ["127.0.0.3"]},
    "cname.test": {"MX": [(10, "alias.cname.test")]},
    "alias.cname.test": {"CNAME": "real.cname.test"},
    "real.cname.test": {"A": ["127.0.0.1"]},
}


@pytest.fixture(scope="module")
def dns():
    with DnsServer(ZONE) as server:
        yield server


def _agent(dns, **kw) -> SmtpAgent:
    return SmtpAgent(settings(**kw), Resolver([("127.0.0.1", dns.port)], lifetime=0.5), _load)


@pytest.mark.parametrize("defer, status", [(False, "5.4.4"), (True, "4.4.4")])
def test_smtp_defer_if_no_mx_address_found(dns, defer, status):
    with h.capture_logs() as logs:
        with pytest.raises(RouteError) as e:
            trio.run(_agent(dns, defer_no_mx_address=defer).targets, NextHop("lame.test", 25))
    assert e.value.status == status
    assert e.value.reason.endswith("name=nowhere.lame.test type=A: Host found but no data record "
                                   "of requested type")
    assert "no MX host for lame.test has a valid address record" in h.lines(logs)


@pytest.mark.parametrize("balance, addresses", [
    (True, ["::", "::", "::", "::", "127.0.0.3"]),
    (False, ["::", "::", "::", "::", "::"]),
])
def test_smtp_balance_inet_protocols(dns, balance, addresses):
    # smtp_mx_address_limit = 5 would leave only the IPv6 addresses of the
    # best MX host; balancing keeps the IPv4 one of the backup.
    a = _agent(dns, balance_protocols=balance, mx_address_limit=5)
    found = trio.run(a.targets, NextHop("many.test", 25))
    # (the DNS answer's order of one host's addresses is not the zone's)
    assert len({t.address for t in found}) == 5
    assert [t.address for t in found if ":" not in t.address] == [
        a for a in addresses if ":" not in a]
    assert [":" in t.address for t in found] == [":" in a for a in addresses]


@pytest.mark.parametrize("overrides, host", [(False, "alias.cname.test"),
                                             (True, "real.cname.test")])
def test_smtp_cname_overrides_servername(dns, overrides, host):
    found = trio.run(_agent(dns, cname_overrides=overrides).targets, NextHop("cname.test", 25))
    assert [(t.host, t.address) for t in found] == [(host, "127.0.0.1")]
    assert found[0].relay == f"{host}[127.0.0.1]:25"


@pytest.mark.parametrize("program, main_cf, per_request, rate", [
    ("smtp", "", False, 500),
    ("smtp", "smtp_per_record_deadline = yes\n", True, 500),      # the 2.9-3.6 name
    ("smtp", "smtp_per_record_deadline = yes\nsmtp_per_request_deadline = no\n", False, 500),
    ("smtp", "smtp_per_request_deadline = yes\nsmtp_min_data_rate = 2000\n", True, 2000),
    ("lmtp", "smtp_per_request_deadline = yes\n", False, 500),
    ("lmtp", "lmtp_per_record_deadline = yes\nlmtp_min_data_rate = 9\n", True, 9),
])
def test_per_request_deadline_settings(tmp_path, program, main_cf, per_request, rate):
    s = SmtpSettings.from_config(_cfg(tmp_path, main_cf, program), program=program)
    assert (s.per_request_deadline, s.min_data_rate) == (per_request, rate)


# -- smtp_pix_workarounds -----------------------------------------------------------
# Seen live (Postfix 3.7.11, a recording server greeting "220 ****...****"):
#   default settings:  "QID: enabling PIX workarounds: disable_esmtp for
#                       127.0.0.1[127.0.0.1]:3602", then HELO
#   threshold 0, delay 3s: "... disable_esmtp delay_dotcrlf for ...", HELO, and
#                       the 250 to the final dot 3 s after the 354
#   smtp_pix_workarounds = delay_dotcrlf (a young message):
#                       "... enabling PIX workarounds:  for ...", then EHLO

PIX = "220 ****************************"


def pix_delivery(tmp_path, main_cf: str, greeting: str = PIX, **req):
    sink = SmtpSink(greeting=greeting)
    s = SmtpSettings.from_config(_cfg(tmp_path, main_cf))
    t0 = time.monotonic()
    status, logs = deliver_to(sink_server(sink), s, "bob@example.org", **req)
    return status.results[0], sink, h.lines(logs), time.monotonic() - t0


def test_pix_greeting_gets_helo_and_a_log_line(tmp_path):
    r, sink, lines, _ = pix_delivery(tmp_path, "")
    assert r.status == "sent" and sink.commands[0].startswith("HELO ")
    (note,) = [x for x in lines if "PIX" in x]
    assert note.startswith("4F2A1C3B7D: enabling PIX workarounds: disable_esmtp for "
                           "127.0.0.1[127.0.0.1]:")


def test_no_pix_workarounds_for_an_ordinary_greeting(tmp_path):
    r, sink, lines, _ = pix_delivery(tmp_path, "", greeting="220 sink.test ESMTP")
    assert sink.commands[0].startswith("EHLO ") and not [x for x in lines if "PIX" in x]


def test_pix_delay_dotcrlf_only_for_old_mail(tmp_path):
    main_cf = "smtp_pix_workarounds = delay_dotcrlf\n"
    r, sink, lines, took = pix_delivery(tmp_path, main_cf)
    assert sink.commands[0].startswith("EHLO ")
    (note,) = [x for x in lines if "PIX" in x]
    assert "enabling PIX workarounds:  for 127.0.0.1[127.0.0.1]:" in note
    assert took < 1.0


def test_pix_delay_dotcrlf(tmp_path):
    main_cf = ("smtp_pix_workaround_threshold_time = 0\nsmtp_pix_workaround_delay_time = 1s\n")
    r, sink, lines, took = pix_delivery(tmp_path, main_cf)
    assert r.status == "sent" and sink.messages[0].data == h.CONTENT
    (note,) = [x for x in lines if "PIX" in x]
    assert "enabling PIX workarounds: disable_esmtp delay_dotcrlf for" in note
    assert took >= 1.0


def test_pix_workaround_maps_by_server_address(tmp_path):
    main_cf = "smtp_pix_workaround_maps = inline:{127.0.0.1=delay_dotcrlf}\n" \
              "smtp_pix_workaround_threshold_time = 0\nsmtp_pix_workaround_delay_time = 1s\n"
    r, sink, lines, took = pix_delivery(tmp_path, main_cf)
    assert sink.commands[0].startswith("EHLO ")
    assert any("enabling PIX workarounds: delay_dotcrlf for" in x for x in lines)
    assert took >= 1.0


def test_pix_delay_dotcrlf_for_every_message_of_a_session(tmp_path):
    # The workarounds belong to the session, as Postfix keeps them with its
    # features: a cached session delays the next message's dot too.
    main_cf = ("smtp_pix_workaround_threshold_time = 0\nsmtp_pix_workaround_delay_time = 1s\n")
    sink = SmtpSink(greeting=PIX)
    s = SmtpSettings.from_config(_cfg(tmp_path, main_cf))
    took = []

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            agent = SmtpAgent(s, Resolver([("127.0.0.1", 9)]), _load, ConnectionCache(5.0))
            n.start_soon(agent.cache.run)
            for qid in ("4F2A1C3B70", "4F2A1C3B71"):
                t0 = trio.current_time()
                await agent.deliver(h.request(f"[127.0.0.1]:{port}", "bob@example.org", qid=qid))
                took.append(trio.current_time() - t0)
            n.cancel_scope.cancel()
    with h.capture_logs():
        trio.run(main)
    assert sink.sessions == 1 and len(sink.messages) == 2
    assert min(took) >= 1.0
