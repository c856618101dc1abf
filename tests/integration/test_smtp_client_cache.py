"""Which sessions the smtp agent keeps for the next delivery, and the early
reply check inside TLS: smtp_tls_connection_reuse,
smtp_connection_reuse_count_limit, smtp_connection_reuse_time_limit,
smtp_connection_cache_on_demand with smtp_connection_cache_destinations,
smtp_tls_block_early_mail_reply.

Seen live with Postfix 3.7.11 (tlsmgr, tlsproxy and scache running,
smtp_tls_security_level = may, smtp_connection_cache_destinations naming
the relay, three messages 0.6 s apart): to a server offering STARTTLS,
smtp_tls_connection_reuse = no took three TLS sessions and no status line
had conn_use=; with yes one session carried all three (conn_use=2,
conn_use=3). To a server without STARTTLS one plaintext session carried
all three either way."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trustme

from mailsys.config.loader import load
from mailsys.runtime.resolver import Resolver
from mailsys.runtime.smtp_agent import TIMEOUT_PARAMS, SmtpAgent, SmtpSettings
from mailsys.runtime.smtp_client_io import ConnectionCache
from mailsys.runtime.smtp_tls import tls_policy
from mailsys.tls import server_context

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
SmtpSink = h.smtpsink.SmtpSink


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """(server SSL context for the sink, client TlsPolicy at level encrypt)."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    (d / "server").mkdir()
    (d / "server" / "main.cf").write_text(f"smtpd_tls_cert_file = {d / 'server.pem'}\n")
    (d / "client").mkdir()
    (d / "client" / "main.cf").write_text(
        f"smtp_tls_security_level = encrypt\nsmtp_tls_CAfile = {d / 'ca.pem'}\n")
    return server_context(load(d / "server")), tls_policy(load(d / "client"))


def settings(**kw) -> SmtpSettings:
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    t["smtp_rset_timeout"] = 5.0
    return SmtpSettings(helo_name="client.test", timeouts=t, cache_time_limit=5.0, **kw)


async def _load(qid: str) -> bytes:
    return h.CONTENT


def deliveries(sink: SmtpSink, s: SmtpSettings, count: int = 3, pause: float = 0.0):
    """count requests to one next hop, one after the other, through an agent
    with a running connection cache: the results and the log lines."""
    out = []

    async def main():
        async with trio.open_nursery() as n:
            port = await n.start(sink.serve)
            agent = SmtpAgent(s, Resolver([("127.0.0.1", 9)]), _load,
                              ConnectionCache(s.cache_time_limit))
            n.start_soon(agent.cache.run)
            for i in range(count):
                status = await agent.deliver(h.request(f"[127.0.0.1]:{port}",
                                                       f"r{i}@example.org", qid=f"4F2A1C3B7{i}"))
                out.append(status.results[0])
                await trio.sleep(pause)
            n.cancel_scope.cancel()
    with h.capture_logs() as logs:
        trio.run(main)
    return out, h.lines(logs)


@pytest.mark.parametrize("reuse, sessions", [(False, 3), (True, 1)])
def test_smtp_tls_connection_reuse(tls, reuse, sessions):
    server, policy = tls
    sink = SmtpSink(tls=server)
    results, lines = deliveries(sink, settings(tls=policy, tls_connection_reuse=reuse))
    assert [r.status for r in results] == ["sent"] * 3
    assert (sink.sessions, sink.tls_sessions) == (sessions, sessions)
    status = [x for x in lines if "status=sent" in x]
    assert [("conn_use=" in x) for x in status] == [False, reuse, reuse]


def test_plaintext_sessions_are_reused_whatever_smtp_tls_connection_reuse_says():
    sink = SmtpSink()
    deliveries(sink, settings(tls_connection_reuse=False))
    assert sink.sessions == 1


@pytest.mark.parametrize("limit, sessions", [(0, 1), (1, 2), (2, 1), (3, 1)])
def test_smtp_connection_reuse_count_limit(limit, sessions):
    # A limit of N lets a connection carry N+1 messages.
    sink = SmtpSink()
    results, _ = deliveries(sink, settings(reuse_count_limit=limit))
    assert [r.status for r in results] == ["sent"] * 3
    assert sink.sessions == sessions


def test_smtp_connection_reuse_time_limit():
    sink = SmtpSink()
    deliveries(sink, settings(reuse_time_limit=0.2), count=2, pause=0.3)
    assert sink.sessions == 2
    sink = SmtpSink()
    deliveries(sink, settings(reuse_time_limit=5.0), count=2, pause=0.3)
    assert sink.sessions == 1


def _cache_settings(tmp_path, main_cf: str) -> SmtpSettings:
    (tmp_path / "main.cf").write_text("smtp_connection_cache_on_demand = no\n" + main_cf)
    (tmp_path / "master.cf").write_text("")
    s = SmtpSettings.from_config(load(tmp_path))
    t = {name: 5.0 for name in TIMEOUT_PARAMS}
    t["smtp_rset_timeout"] = 5.0
    return SmtpSettings(helo_name="client.test", timeouts=t, cache_time_limit=5.0,
                        cache_on_demand=s.cache_on_demand,
                        cache_destinations=s.cache_destinations)


@pytest.mark.parametrize("main_cf, sessions", [
    ("", 3),                                                     # on demand off, no list
    ("smtp_connection_cache_destinations = 127.0.0.1\n", 1),
    ("smtp_connection_cache_destinations = example.com, 127.0.0.1\n", 1),
    ("smtp_connection_cache_destinations = example.com\n", 3),
    ("smtp_connection_cache_destinations = !127.0.0.1, 127.0.0.1\n", 3),
    ("smtp_connection_cache_destinations = inline:{127.0.0.1=x}\n", 1),
    ("smtp_connection_cache_destinations = FILE\n", 1),
])
def test_smtp_connection_cache_destinations(tmp_path, main_cf, sessions):
    listed = tmp_path / "cached"
    listed.write_text("# relays\nexample.com\n127.0.0.1\n")
    sink = SmtpSink()
    deliveries(sink, _cache_settings(tmp_path, main_cf.replace("FILE", str(listed))))
    assert sink.sessions == sessions


@pytest.mark.parametrize("block", [True, False])
def test_smtp_tls_block_early_mail_reply(tls, block):
    server, policy = tls
    sink = SmtpSink(tls=server, tls_ehlo_extra="250 2.1.0 Ok")
    s = settings(tls=policy, block_early_reply="smtp_tls_block_early_mail_reply" if block else "")
    results, lines = deliveries(sink, s, count=1)
    r = results[0]
    if block:
        assert (r.status, r.dsn, r.reason) == ("deferred", "4.7.0", "unexpected server message")
        assert "server 127.0.0.1[127.0.0.1] violates smtp_tls_block_early_mail_reply policy" \
            in lines
        assert not any(c.startswith("MAIL") for c in sink.commands)
    else:
        assert r.reason != "unexpected server message"
        assert any(c.startswith("MAIL") for c in sink.commands)


def test_settings_from_main_cf(tmp_path):
    (tmp_path / "main.cf").write_text(
        "smtp_tls_connection_reuse = yes\nsmtp_connection_reuse_count_limit = 7\n"
        "smtp_connection_reuse_time_limit = 60s\nsmtp_tls_block_early_mail_reply = yes\n")
    (tmp_path / "master.cf").write_text("")
    s = SmtpSettings.from_config(load(tmp_path))
    assert (s.tls_connection_reuse, s.reuse_count_limit, s.reuse_time_limit, s.cache_on_demand,
            s.cache_destinations, s.block_early_reply) == (
        True, 7, 60.0, True, None, "smtp_tls_block_early_mail_reply")
