"""smtpd in-process: a session over a memory stream, cleanup and anvil on real Unix sockets."""

from __future__ import annotations

import gc
import os
import socket
import sys
import weakref
from pathlib import Path

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from mailsys.ipc.messages import ErrorCode, ErrorReply
from mailsys.ipc.proto import flush as flush_proto
from mailsys.ipc.proto.cleanup import Rejected
from mailsys.runtime import smtpd_session
from mailsys.runtime.fast_stream import FastStream
from mailsys.runtime.smtpd_server import SmtpdServer
from mailsys.runtime.smtpd_session import Session

sys.path.insert(0, str(Path(__file__).parent))      # _smtpd_testlib.py (tests/ is no package)
from _smtpd_testlib import (PARAMS, FakeCleanup, converse, open_session,  # noqa: E402
                            start_session, trio_test)

TRANSACTION = (b"EHLO client.example\r\nMAIL FROM:<alice@example.org> RET=HDRS ENVID=e1 BODY=8BITMIME\r\n"
               b"RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.test\r\n"
               b"RCPT TO:<carol@example.test>\r\nDATA\r\n"
               b"Subject: hi\r\n\r\n..dotted\r\nbody\r\n.\r\nQUIT\r\n")


@pytest.mark.parametrize("step", [None, 1, 7])
@trio_test
async def test_transaction_reaches_cleanup_whole(make_config, step):
    cfg = make_config(**PARAMS)
    cleanup = FakeCleanup()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, session = await open_session(nursery, cfg, cleanup=cleanup)
            chunks = [TRANSACTION] if step is None else \
                [TRANSACTION[i:i + step] for i in range(0, len(TRANSACTION), step)]
            for chunk in chunks:
                await client.send(chunk)
            got = await client.replies(7)
            assert await client.reply() == ""
            nursery.cancel_scope.cancel()
    assert [r[:3] for r in got] == ["250", "250", "250", "250", "354", "250", "221"]
    [req] = cleanup.requests
    assert got[5] == f"250 2.0.0 Ok: queued as {req.queue_id}"
    assert req.content == b"Subject: hi\r\n\r\n.dotted\r\nbody\r\n"
    assert req.crlf             # checked while reading: cleanup need not look again
    assert (req.sender, req.envid, req.ret, req.body_type) == ("alice@example.org", "e1", "HDRS", "8BITMIME")
    assert [(r.address, r.orcpt, r.notify) for r in req.recipients] == [
        ("bob@example.test", "rfc822;bob@example.test", ("SUCCESS", "FAILURE")),
        # No ORCPT given: the address as received, as Postfix's smtpd keeps it.
        ("carol@example.test", "rfc822;carol@example.test", ())]
    assert (req.client_name, req.client_addr, req.client_port) == ("client.example", "192.0.2.7", 4711)
    assert (req.helo, req.protocol, req.local) == ("client.example", "ESMTP", False)
    client_lines = [e for e in logs if e["event"] == "client"]
    assert client_lines == [{"event": "client", "queue_id": req.queue_id, "client": "client.example[192.0.2.7]",
                             "sasl_method": "", "sasl_username": "", "sasl_sender": "",
                             "log_level": "info"}]
    assert {"event": "disconnect", "client": "client.example[192.0.2.7]",
            "stats": "ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6", "log_level": "info"} in logs


def live(cls: type) -> int:
    """How many instances of cls the cycle collector knows of."""
    return sum(type(o) is cls for o in gc.get_objects())


@trio_test
async def test_a_finished_session_is_freed_without_the_cycle_collector(make_config):
    cfg = make_config(**PARAMS)
    gc.disable()
    try:
        async with trio.open_nursery() as nursery:
            client, session = await open_session(nursery, cfg, cleanup=FakeCleanup())
            alive = weakref.ref(session)
            parts = [weakref.ref(session.pump), weakref.ref(session.auth)]
            # The protocol core may be compiled (setup.py), and then it
            # takes no weak reference: count its instances instead (an
            # earlier test's may wait for the collector).
            conn_type = type(session.conn)
            during = live(conn_type)
            del session
            await client.send(TRANSACTION)
            assert [r[:3] for r in await client.replies(7)][-1] == "221"
            await client.done.wait()
            nursery.cancel_scope.cancel()
        assert alive() is None and all(part() is None for part in parts)
        assert live(conn_type) == during - 1
    finally:
        gc.enable()


@trio_test
async def test_loopback_client_is_local_and_bdat_is_queued(make_config):
    cfg = make_config(**PARAMS)
    cleanup = FakeCleanup()
    async with trio.open_nursery() as nursery:
        client, _ = await open_session(nursery, cfg, cleanup=cleanup, addr="127.0.0.1", name="localhost")
        await client.send(b"EHLO l\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                          b"BDAT 4\r\nab\r\nBDAT 3 LAST\r\nc\r\n")
        got = await client.replies(5)
        nursery.cancel_scope.cancel()
    [req] = cleanup.requests
    assert req.local and req.content == b"ab\r\nc\r\n"
    assert not req.crlf         # BDAT content is not looked at: cleanup checks it
    assert got[3:] == ["250 2.0.0 Ok: 4 bytes", f"250 2.0.0 Ok: 7 bytes queued as {req.queue_id}"]


@pytest.mark.parametrize("answer,reply", [
    (ErrorReply(ErrorCode.QUEUE_FULL, "map full"), "452 4.3.1 Insufficient system storage"),
    (ErrorReply(ErrorCode.WRITE_ERROR, "disk"), "451 4.3.0 Error: queue file write error"),
    (ErrorReply(ErrorCode.INTERNAL, "bug"), "451 4.3.0 Error: queue file write error"),
    (Rejected(554, "5.4.0", "Error: too many hops"), "554 5.4.0 Error: too many hops"),
])
@trio_test
async def test_cleanup_refusals_and_the_session_goes_on(make_config, answer, reply):
    cfg = make_config(**PARAMS)
    cleanup = FakeCleanup(lambda req: answer)
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                                 b"DATA\r\nx\r\n.\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\n", 7, cleanup=cleanup)
    assert got[4:] == [reply, "250 2.0.0 Ok", "250 2.1.0 Ok"]
    # cleanup logs why it refused; Postfix 3.7's smtpd logs no reject line for it.
    assert [e for e in logs if e["event"] == "reject"] == []


@pytest.mark.parametrize("mode,content,crlf", [
    ("normalize", b"bare\r\nline\r\n", True),
    ("no", b"bare\nline\r\n", False),
])
@trio_test
async def test_bare_lf_content_and_its_crlf_flag(make_config, mode, content, crlf):
    cfg = make_config(**PARAMS, smtpd_forbid_bare_newline=mode)
    cleanup = FakeCleanup()
    got, _ = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                              b"DATA\r\nbare\nline\r\n.\r\n", 5, cleanup=cleanup)
    assert got[4].startswith("250 2.0.0 Ok: queued as ")
    [req] = cleanup.requests
    assert (req.content, req.crlf) == (content, crlf)


@trio_test
async def test_bare_lf_rejected_and_logged(make_config):
    cfg = make_config(**PARAMS, smtpd_forbid_bare_newline="reject")
    cleanup = FakeCleanup()
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                                 b"DATA\r\nbare\nline\r\n.\r\nNOOP\r\n", 6, cleanup=cleanup)
    assert got[4:] == ["550 5.5.2 mx.example.test Error: bare <LF> received", "250 2.0.0 Ok"]
    assert not cleanup.requests
    [reject] = [e for e in logs if e["event"] == "reject"]
    assert (reject["command"], reject["reply"], reject["recipient"]) == \
        ("END-OF-MESSAGE", "bare <LF> received", "b@example.test")
    assert reject["queue_id"]


@trio_test
async def test_helo_restrictions_without_delay_reject(make_config):
    cfg = make_config(**PARAMS, smtpd_delay_reject="no",
                      smtpd_helo_restrictions="reject_non_fqdn_helo_hostname")
    got, logs = await converse(cfg, b"HELO localhost\r\nMAIL FROM:<a@example.org>\r\nHELO host.example\r\n", 3)
    assert got == ["504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
                   "250 2.1.0 Ok", "250 mx.example.test"]
    [reject] = [e for e in logs if e["event"] == "reject"]
    assert (reject["command"], reject["helo"], reject["noqueue"]) == ("HELO", "localhost", True)


@pytest.mark.parametrize("mydestination, reply", [
    ("example.test", "454 4.7.1 <x>: Relay access denied"),
    ("$myhostname", "250 2.1.5 Ok"),
])
@trio_test
async def test_recipient_without_domain_is_local_only_when_myhostname_is(make_config,
                                                                          mydestination, reply):
    """resolve.c re-resolves "user" as user@$myhostname: with $myhostname
    not in $mydestination it is relayed like any other address (Postfix
    3.7.11: "554 5.7.1 <x>: Relay access denied" from outside
    $mynetworks, where mailsys took it for a local user)."""
    cfg = make_config(**{**PARAMS, "mydestination": mydestination})
    got, _ = await converse(cfg, b"EHLO c.example\r\nMAIL FROM:<s@c.example>\r\n"
                                 b"RCPT TO:<x>\r\n", 3)
    assert got[2] == reply


@trio_test
async def test_relay_denied_is_logged_as_postfix_does(make_config):
    cfg = make_config(**PARAMS)
    got, logs = await converse(cfg, b"EHLO spammer.example\r\nMAIL FROM:<s@spammer.example>\r\n"
                                 b"RCPT TO:<victim@remote.example>\r\n", 3)
    assert got[2] == "454 4.7.1 <victim@remote.example>: Relay access denied"
    assert {"event": "reject", "command": "RCPT", "client": "client.example[192.0.2.7]",
            "reply": "454 4.7.1 <victim@remote.example>: Relay access denied",
            "sender": "s@spammer.example", "recipient": "victim@remote.example", "proto": "ESMTP",
            "helo": "spammer.example", "sasl_method": "", "sasl_username": "", "noqueue": True,
            "log_level": "info"} in logs


@trio_test(clock=lambda: trio.testing.MockClock(autojump_threshold=0))
async def test_timeout_after_a_command(make_config):
    cfg = make_config(smtpd_timeout="30s", **PARAMS)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg)
            await client.send(b"EHLO c\r\n")
            await client.reply()
            start = trio.current_time()
            assert await client.reply() == "421 4.4.2 mx.example.test Error: timeout exceeded"
            assert trio.current_time() - start == pytest.approx(30)
            assert await client.reply() == ""
            nursery.cancel_scope.cancel()
    events = [e["event"] for e in logs]
    assert "timeout after EHLO from client.example[192.0.2.7]" in events


@trio_test(clock=lambda: trio.testing.MockClock(autojump_threshold=0))
async def test_error_sleep_after_soft_limit(make_config):
    cfg = make_config(**{**PARAMS, "smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "5s"})
    async with trio.open_nursery() as nursery:
        client, _ = await open_session(nursery, cfg)
        times = []
        for _ in range(4):
            await client.send(b"BOGUS\r\n")
            await client.reply()
            times.append(trio.current_time())
        nursery.cancel_scope.cancel()
    gaps = [round(b - a) for a, b in zip([0.0, *times], times)]
    assert gaps == [0, 0, 5, 5]     # replies wait once 2 errors are counted


def _spool_files(queue_dir: Path) -> list[str]:
    """This process's open files in queue_dir: smtpd's spooled content."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{queue_dir}/"):
            found.append(target)
    return found


ENVELOPE = b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"


@trio_test
async def test_big_content_is_spooled_as_it_arrives(make_config, queue_dir, monkeypatch):
    monkeypatch.setattr(smtpd_session, "SPOOL_OVER", 1000)
    cfg = make_config(**PARAMS)
    cleanup = FakeCleanup()
    body = b"".join(b"line %04d ................................\r\n" % i for i in range(100))
    async with trio.open_nursery() as nursery:
        client, _ = await open_session(nursery, cfg, cleanup=cleanup)
        await client.send(ENVELOPE + b"DATA\r\n")
        assert [r[:3] for r in await client.replies(4)] == ["250", "250", "250", "354"]
        assert _spool_files(queue_dir) == []
        for i in range(0, len(body), 700):
            await client.send(body[i:i + 700])
        await trio.testing.wait_all_tasks_blocked()
        assert len(_spool_files(queue_dir)) == 1        # over 1000 bytes: in a file
        await client.send(b".\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                          b"BDAT 2000\r\n" + body[:2000] + b"BDAT 3 LAST\r\nend")
        got = await client.replies(5)
        assert _spool_files(queue_dir) == []            # each file goes with its message
        nursery.cancel_scope.cancel()
    first, second = cleanup.requests
    assert got[:1] + got[3:] == [f"250 2.0.0 Ok: queued as {first.queue_id}",
                                 "250 2.0.0 Ok: 2000 bytes",
                                 f"250 2.0.0 Ok: 2005 bytes queued as {second.queue_id}"]
    assert first.content == body and second.content == body[:2000] + b"end"


# Content on either side of SPOOL_WAITING, which the tests set to 1000.
SMALL, BIG = b"x" * 900 + b"\r\n", b"y" * 3000 + b"\r\n"


async def _session_in_transaction(nursery, make_config, monkeypatch, cleanup):
    """A session past EHLO, MAIL and RCPT, with SPOOL_WAITING at 1000 bytes."""
    monkeypatch.setattr(smtpd_session, "SPOOL_WAITING", 1000)
    client, session = await open_session(nursery, make_config(**PARAMS), cleanup=cleanup)
    await client.send(ENVELOPE)
    await client.replies(3)
    return client, session


@trio_test
async def test_content_waiting_for_a_busy_cleanup_is_spooled(make_config, queue_dir, monkeypatch):
    cleanup = FakeCleanup()
    small, big = SMALL, BIG
    async with trio.open_nursery() as nursery:
        client, session = await _session_in_transaction(nursery, make_config, monkeypatch, cleanup)
        pool = session.server.cleanup
        for content, spooled in [(small, []), (big, [1])]:
            async with pool.channel():              # what all 48 busy channels look like
                for _ in range(pool.size - 1):
                    await pool._slots.acquire()
                await client.send(b"DATA\r\n" + content + b".\r\n")
                await trio.sleep(0.05)
                # Over SPOOL_WAITING it waits in a file; below, in memory.
                assert [1 for _ in _spool_files(queue_dir)] == spooled
                for _ in range(pool.size - 1):
                    pool._slots.release()
            got = await client.replies(2)
            assert got[0] == "354 End data with <CR><LF>.<CR><LF>" and got[1].startswith("250 2.0.0 Ok: queued")
            await client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n")
            await client.replies(2)
        nursery.cancel_scope.cancel()
    assert [r.content for r in cleanup.requests] == [small, big]


@trio_test
async def test_large_content_waits_for_the_budget_in_its_spool_file(make_config, queue_dir,
                                                                    monkeypatch):
    cleanup = FakeCleanup()
    small, big = SMALL, BIG
    async with trio.open_nursery() as nursery:
        client, session = await _session_in_transaction(nursery, make_config, monkeypatch, cleanup)
        budget = session.server.content_budget
        async with budget.hold(budget.total):           # other large content in flight
            # Small content does not count against the budget.
            await client.send(b"DATA\r\n" + small + b".\r\n")
            got = await client.replies(2)
            assert got[1].startswith("250 2.0.0 Ok: queued")
            await client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                              b"DATA\r\n")
            assert [r[:3] for r in await client.replies(3)] == ["250", "250", "354"]
            await client.send(big + b".\r\n")
            await trio.sleep(0.05)
            # Large content waits, in a file, and cleanup has none of it yet.
            assert len(_spool_files(queue_dir)) == 1
            assert [r.content for r in cleanup.requests] == [small]
        assert (await client.reply()).startswith("250 2.0.0 Ok: queued")
        assert _spool_files(queue_dir) == [] and budget.used == 0
        nursery.cancel_scope.cancel()
    assert [r.content for r in cleanup.requests] == [small, big]


@trio_test
async def test_the_content_is_let_go_once_cleanup_has_it_whole(make_config, queue_dir,
                                                               monkeypatch):
    class SlowCleanup(FakeCleanup):
        async def handle(self, req):
            self.requests.append(req)
            await answer.wait()
            return self.answer(req)
    answer = trio.Event()
    cleanup = SlowCleanup()
    async with trio.open_nursery() as nursery:
        client, session = await _session_in_transaction(nursery, make_config, monkeypatch, cleanup)
        pool = session.server.cleanup
        async with pool.channel():                  # every channel busy: into a file
            for _ in range(pool.size - 1):
                await pool._slots.acquire()
            await client.send(b"DATA\r\n" + BIG + b".\r\n")
            await trio.sleep(0.05)
            assert len(_spool_files(queue_dir)) == 1
            for _ in range(pool.size - 1):
                pool._slots.release()
        with trio.fail_after(2):
            while not cleanup.requests:
                await trio.sleep(0.01)
        await trio.sleep(0.05)
        # cleanup has not answered, and smtpd's copy is gone already.
        assert _spool_files(queue_dir) == []
        answer.set()
        got = await client.replies(2)
        nursery.cancel_scope.cancel()
    assert got[1].startswith("250 2.0.0 Ok: queued")
    assert [r.content for r in cleanup.requests] == [BIG]


@trio_test
async def test_the_wait_for_the_budget_counts_within_the_time_for_cleanup(make_config, queue_dir,
                                                                          monkeypatch):
    monkeypatch.setattr(smtpd_session, "CLEANUP_TIMEOUT", 0.2)
    cleanup = FakeCleanup()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, session = await _session_in_transaction(nursery, make_config, monkeypatch,
                                                            cleanup)
            session.server.timeout = 0.3
            budget = session.server.content_budget
            async with budget.hold(budget.total):       # held past the time limit
                await client.send(b"DATA\r\n" + BIG + b".\r\n")
                start = trio.current_time()
                with trio.fail_after(2):
                    got = await client.replies(2)
                waited = trio.current_time() - start
                assert budget.used == budget.total and _spool_files(queue_dir) == []
            nursery.cancel_scope.cancel()
    assert got == ["354 End data with <CR><LF>.<CR><LF>",
                   "451 4.3.0 Error: queue file write error"]
    assert 0.3 <= waited < 1.0
    assert cleanup.requests == []
    assert "problem talking to server private/cleanup: no room for the content within 0.3s" \
        in [e["event"] for e in logs]


@trio_test
async def test_a_spool_file_that_cannot_be_written_answers_451(make_config, queue_dir, monkeypatch):
    monkeypatch.setattr(smtpd_session, "SPOOL_OVER", 100)
    cfg = make_config(**PARAMS)
    cleanup = FakeCleanup()
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, session = await open_session(nursery, cfg, cleanup=cleanup)
            session.server.queue_dir = queue_dir / "gone"
            await client.send(ENVELOPE + b"DATA\r\n" + b"z" * 500 + b"\r\n.\r\n"
                              b"MAIL FROM:<a@example.org>\r\n")
            got = await client.replies(6)
            nursery.cancel_scope.cancel()
    assert got[4:] == ["451 4.3.0 Error: queue file write error", "250 2.1.0 Ok"]
    assert cleanup.requests == []
    [warning] = [e["event"] for e in logs if "queue file write error" in e["event"]]
    qid = warning.split(":")[0]
    assert warning.startswith(f"{qid}: queue file write error: [Errno 2] No such file or directory: "
                              f"'{queue_dir}/gone/")


@trio_test
async def test_lost_connection_during_data(make_config):
    cfg = make_config(**PARAMS)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg, cleanup=FakeCleanup())
            await client.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                              b"DATA\r\n")
            await client.replies(4)
            await client.send(b"0123456789abcd")
            await client.stream.aclose()
            await client.done.wait()
            nursery.cancel_scope.cancel()
    events = [e["event"] for e in logs]
    assert "lost connection after DATA (14 bytes) from client.example[192.0.2.7]" in events


@trio_test
async def test_anvil_connection_limit_and_message_rate(make_config):
    cfg = make_config(**{**PARAMS, "smtpd_client_connection_count_limit": "1",
                         "smtpd_client_message_rate_limit": "1",
                         "smtpd_client_event_limit_exceptions": ""})
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            first, _ = await open_session(nursery, cfg, anvil=True)
            await first.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nMAIL FROM:<a@example.org>\r\n")
            got = await first.replies(4)
            server = SmtpdServer.from_config(cfg, "smtp")
            second = start_session(nursery, Session(server, "client.example", "192.0.2.7", 4712))
            refusal = await second.reply()
            nursery.cancel_scope.cancel()
    assert got[1:] == ["250 2.1.0 Ok", "250 2.0.0 Ok", "450 4.7.1 Error: too much mail from 192.0.2.7"]
    assert refusal == "421 4.7.0 mx.example.test Error: too many connections from 192.0.2.7"
    # (the test's anvil goes away before the sessions' disconnects: not counted here)
    warnings = [e["event"] for e in logs if "limit exceeded" in e["event"]]
    assert warnings == [
        "Message delivery request rate limit exceeded: 2 from client.example[192.0.2.7] for service smtp",
        "Connection concurrency limit exceeded: 2 from client.example[192.0.2.7] for service smtp"]


@trio_test
async def test_anvil_recipient_and_auth_rates(make_config, tmp_path):
    users = tmp_path / "sasl_users"
    users.write_text("")
    cfg = make_config(**{**PARAMS, "smtpd_client_recipient_rate_limit": "1",
                         "smtpd_client_auth_rate_limit": "1", "smtpd_sasl_auth_enable": "yes",
                         "smtpd_sasl_users_file": str(users),
                         "smtpd_client_event_limit_exceptions": ""})
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                                    b"RCPT TO:<c@example.test>\r\nRSET\r\nAUTH PLAIN AGIAeA==\r\n"
                                    b"AUTH PLAIN AGIAeA==\r\n", 7, anvil=True)
    assert got[2:] == ["250 2.1.5 Ok", "450 4.7.1 Error: too many recipients from 192.0.2.7",
                       "250 2.0.0 Ok", "535 5.7.8 Error: authentication failed: authentication failure",
                       "450 4.7.1 Error: too many AUTH commands from 192.0.2.7"]
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings[:3] == [
        "Recipient address rate limit exceeded: 2 from client.example[192.0.2.7] for service smtp",
        "client.example[192.0.2.7]: SASL PLAIN authentication failed: authentication failure, "
        "sasl_username=b",
        "AUTH command rate limit exceeded: 2 from client.example[192.0.2.7] for service smtp"]


@trio_test
async def test_client_port_logging(make_config):
    cfg = make_config(**PARAMS, smtpd_client_port_logging="yes")
    got, logs = await converse(cfg, b"QUIT\r\n", 1)
    assert got == ["221 2.0.0 Bye"]
    assert {"event": "connect", "client": "client.example[192.0.2.7]:4711", "log_level": "info"} in logs


@trio_test
async def test_client_restrictions_at_connect_without_delay_reject(make_config):
    # Postfix 3.7.11: the refusal is the greeting, logged "NOQUEUE: reject:
    # CONNECT from ...; proto=SMTP"; then 503 to all but QUIT.
    cfg = make_config(**PARAMS, smtpd_delay_reject="no", smtpd_client_restrictions="reject")
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            server = SmtpdServer.from_config(cfg, "smtp")
            client = start_session(nursery, Session(server, "client.example", "192.0.2.7", 4711))
            await client.send(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nNOOP\r\nQUIT\r\n")
            got = await client.replies(5)
            await client.done.wait()
    refusal = "554 5.7.1 <client.example[192.0.2.7]>: Client host rejected: Access denied"
    denied = "503 5.7.0 Error: access denied for client.example[192.0.2.7]"
    assert got == [refusal, denied, denied, denied, "221 2.0.0 Bye"]
    [reject] = [e for e in logs if e["event"] == "reject"]
    assert (reject["command"], reject["reply"], reject["noqueue"]) == ("CONNECT", refusal, True)
    [end] = [e for e in logs if e["event"] == "disconnect"]
    assert end["stats"] == "ehlo=0/1 mail=0/1 noop=0/1 quit=1 commands=1/4"


@trio_test
async def test_improper_pipelining_is_noted_once(make_config):
    cfg = make_config(**PARAMS)
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
                                    b"NOOP\r\nNOOP\r\n", 5)
    assert [r[:3] for r in got] == ["250"] * 5
    notes = [e["event"] for e in logs if e["event"].startswith("improper")]
    # The client's bytes escaped as Postfix's escape() writes them.
    assert notes == ["improper command pipelining after EHLO from client.example[192.0.2.7]: "
                     "MAIL FROM:<a@example.org>\\r\\nRCPT TO:<b@example.test>\\r\\nNOOP\\r\\nNOOP\\r\\n"]


@pytest.mark.parametrize("forbid", ["no", "yes"])
@trio_test
async def test_a_client_that_did_not_say_ehlo_may_not_pipeline_any_command(make_config, forbid):
    # smtpd.c smtpd_proto(): with the protocol not ESMTP, every command is
    # checked, not only those that end a group (MAIL and RCPT here).
    cfg = make_config(**PARAMS, smtpd_forbid_unauth_pipelining=forbid)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg)
            await client.send(b"HELO c\r\n")
            assert (await client.reply()).startswith("250 ")
            await client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n")
            got = await client.replies(2)
            nursery.cancel_scope.cancel()
    assert [e["event"] for e in logs if e["event"].startswith("improper")] == [
        "improper command pipelining after MAIL from client.example[192.0.2.7]: "
        "RCPT TO:<b@example.test>\\r\\n"]
    if forbid == "yes":
        assert got == ["554 5.5.0 Error: SMTP protocol synchronization", ""]
    else:
        assert [r[:3] for r in got] == ["250", "250"]
    # After EHLO the same two may be pipelined.
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg)
            await client.send(b"EHLO c\r\n")
            assert (await client.reply()).startswith("250-")
            await client.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n")
            assert [r[:3] for r in await client.replies(2)] == ["250", "250"]
            nursery.cancel_scope.cancel()
    assert not any(e["event"].startswith("improper") for e in logs)


@trio_test
async def test_forbidden_unauth_pipelining_ends_the_session(make_config):
    # smtpd.c with smtpd_forbid_unauth_pipelining = yes: the note, then
    # "554 5.5.0 Error: SMTP protocol synchronization" instead of running
    # the command, and the connection closes.
    cfg = make_config(**PARAMS, smtpd_forbid_unauth_pipelining="yes")
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n", 2)
    assert got == ["554 5.5.0 Error: SMTP protocol synchronization", ""]
    assert any(e["event"].startswith("improper command pipelining after EHLO") for e in logs)
    # A client that waits for each reply is not affected.
    got, _ = await converse(cfg, b"EHLO c\r\n", 1)
    assert got[0].startswith("250-mx.example.test\n250-PIPELINING")


async def talk_first(cfg, sent: bytes, service_type: str = "inet") -> tuple[bytes, list[dict]]:
    """A session over a real socket whose client sent `sent` before the
    greeting: what it got back, and the log events."""
    server = SmtpdServer.from_config(cfg, "smtp")
    server.pregreet_check = service_type != "pass"
    client, ours = socket.socketpair()
    client.sendall(sent)
    client.shutdown(socket.SHUT_WR)
    with capture_logs() as logs:
        async with FastStream(ours) as stream:
            await Session(server, "client.example", "192.0.2.7", 4711).run(stream)
    got = client.recv(65536)
    client.close()
    return got, logs


@pytest.mark.parametrize("forbid", ["no", "yes"])
@trio_test
async def test_a_client_that_talks_before_the_greeting_is_noted(make_config, forbid):
    # smtpd.c smtpd_proto(): smtpd_flag_ill_pipelining() before the
    # greeting, and with smtpd_forbid_unauth_pipelining its 554 instead.
    cfg = make_config(**PARAMS, smtpd_forbid_unauth_pipelining=forbid)
    got, logs = await talk_first(cfg, b"EHLO early\r\nQUIT\r\n")
    assert ("improper command pipelining after CONNECT from client.example[192.0.2.7]: "
            "EHLO early\\r\\nQUIT\\r\\n") in [e["event"] for e in logs]
    if forbid == "yes":
        assert got == b"554 5.5.0 Error: SMTP protocol synchronization\r\n"
    else:
        assert got.startswith(b"220 mx.example.test ESMTP") and got.endswith(b"221 2.0.0 Bye\r\n")
    # postscreen's connections are not looked at: it had the client before.
    _, logs = await talk_first(cfg, b"QUIT\r\n", service_type="pass")
    assert not [e for e in logs if e["event"].startswith("improper")]


@trio_test
async def test_non_smtp_command_is_logged_escaped_as_postfix_does(make_config):
    # Postfix 3.7.11, "GET / HTTP/1.0<SOH><c3 a9><TAB>\\z":
    #   warning: non-SMTP command from unknown[127.0.0.1]: GET / HTTP/1.0\001\303\251\t\\\\z
    cfg = make_config(**PARAMS)
    got, logs = await converse(cfg, "GET / HTTP/1.0\x01\u00e9\t\\z\r\n".encode(), 1)
    assert got == ["221 2.7.0 Error: I can break rules, too. Goodbye."]
    [note] = [e for e in logs if e["event"].startswith("non-SMTP")]
    assert note["event"] == ("non-SMTP command from client.example[192.0.2.7]: "
                             "GET / HTTP/1.0\\001\\303\\251\\t\\\\z")
    assert note["log_level"] == "warning"


@pytest.mark.parametrize("line", [".", "1234", "-x", "connect example.org:443"])
@trio_test
async def test_default_forbidden_commands_catch_non_smtp_lines(make_config, line):
    """Postfix 3.7's default smtpd_forbidden_commands ends in
    regexp:{{/^[^A-Z]/ Bogus}}: a command word that does not start with a
    letter (the "." of a body sent after DATA was refused) ends the
    session as non-SMTP, as CONNECT does in any case; an unknown word
    that starts with one is only not recognized."""
    cfg = make_config(**PARAMS)
    got, logs = await converse(cfg, f"EHLO c\r\n{line}\r\nNOOP\r\n".encode(), 2)
    assert got[1:] == ["221 2.7.0 Error: I can break rules, too. Goodbye."]
    assert [e["event"] for e in logs if e["event"].startswith("non-SMTP")] == [
        f"non-SMTP command from client.example[192.0.2.7]: {line}"]
    got, _ = await converse(cfg, b"EHLO c\r\nhello world\r\nNOOP\r\n", 3)
    assert got[1:] == ["500 5.5.2 Error: command not recognized", "250 2.0.0 Ok"]


@trio_test
async def test_waiting_client_is_not_noted(make_config):
    cfg = make_config(**PARAMS)
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg)
            for command in (b"EHLO c\r\n", b"NOOP\r\n", b"MAIL FROM:<a@example.org>\r\n"):
                await client.send(command)
                await client.reply()
            nursery.cancel_scope.cancel()
    assert not [e for e in logs if e["event"].startswith("improper")]


@trio_test
async def test_recipient_rate_counted_before_the_address_syntax(make_config):
    # Postfix 3.7.11, smtpd_client_recipient_rate_limit = 2: rcpt_cmd() asks
    # anvil right after "RCPT TO:" parses, so a malformed address counts and,
    # over the rate, gets the 450 (no "Illegal address syntax" warning); so
    # does a bad parameter. "RCPT foo" (501 5.5.4) is not counted.
    cfg = make_config(**{**PARAMS, "smtpd_client_recipient_rate_limit": "2",
                         "smtpd_client_event_limit_exceptions": ""})
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b b@example.test>\r\n"
                                    b"RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\n"
                                    b"RCPT TO:<e e@example.test>\r\nRCPT foo\r\n"
                                    b"RCPT TO:<f@example.test> BOGUS=1\r\nQUIT\r\n", 9, anvil=True)
    over = "450 4.7.1 Error: too many recipients from 192.0.2.7"
    assert got[2:] == ["501 5.1.3 Bad recipient address syntax", "250 2.1.5 Ok", over, over,
                       "501 5.5.4 Syntax: RCPT TO:<address>", over, "221 2.0.0 Bye"]
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings[:4] == [
        "Illegal address syntax from client.example[192.0.2.7] in RCPT command: <b b@example.test>",
        *(f"Recipient address rate limit exceeded: {n} from client.example[192.0.2.7] for service smtp"
          for n in (3, 4, 5))]
    assert [e["stats"] for e in logs if e["event"] == "disconnect"] == [
        "ehlo=1 mail=1 rcpt=1/6 quit=1 commands=4/9"]


@trio_test
async def test_etrn_site_the_flush_service_calls_bad(make_config, monkeypatch):
    # smtpd.c etrn_cmd(), FLUSH_STAT_BAD: 458 and
    # "warning: bad ETRN %.100s... from %s".
    async def call(path, request, **kw):
        return flush_proto.FlushStatus(flush_proto.BAD)
    monkeypatch.setattr(smtpd_session.ipc_io, "call", call)
    got, logs = await converse(make_config(**PARAMS), b"EHLO c\r\nETRN example.net\r\n", 2)
    assert got[1] == "458 Unable to queue messages"
    assert {"event": "bad ETRN example.net... from client.example[192.0.2.7]",
            "log_level": "warning"} in logs


@trio_test
async def test_wrapper_mode_without_tls_drops_the_client(make_config):
    # smtpd.c smtpd_proto(): no TLS context in wrapper mode, no reply.
    server = SmtpdServer.from_config(make_config(**PARAMS, smtpd_tls_wrappermode="yes"), "smtp")
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client = start_session(nursery, Session(server, "client.example", "192.0.2.7", 4711))
            assert await client.reply() == ""
    assert {"event": "Wrapper-mode request dropped from client.example[192.0.2.7] for service "
            "smtp. TLS context initialization failed. For details see earlier warnings in "
            "your logs.", "log_level": "warning"} in logs


@trio_test
async def test_bare_lf_command_is_logged_and_ends_the_session(make_config):
    # smtpd.c smtpd_proto(), smtpd_forbid_bare_newline = reject: log_whatsup()
    # "reject: <where> from <client>: bare <LF> received; ...", the reply, hangup.
    cfg = make_config(**PARAMS, smtpd_forbid_bare_newline="reject",
                      smtpd_forbid_bare_newline_exclusions="")
    got, logs = await converse(cfg, b"EHLO c.example\r\nMAIL FROM:<a@example.org>\r\n"
                                    b"RCPT TO:<b@example.test>\r\nNOOP\nNOOP\r\n", 5)
    assert got[3:] == ["550 5.5.2 mx.example.test Error: bare <LF> received", ""]
    [reject] = [e for e in logs if e["event"] == "reject"]
    assert (reject["command"], reject["reply"], reject["sender"], reject["recipient"],
            reject["helo"]) == ("RCPT", "bare <LF> received", "a@example.org",
                                "b@example.test", "c.example")
    assert reject["queue_id"]                   # the transaction's, as Postfix's queue file


@trio_test
async def test_bdat_warnings(make_config):
    # smtpd.c bdat_cmd(): "QID: BDAT request from %s exceeds message size
    # limit" before the chunk is skipped, "QID: malformed BDAT command
    # syntax from %s: %.100s" before the 521 (the transaction is still
    # open after a chunk that is not the last one: "NOQUEUE" outside one).
    cfg = make_config(**PARAMS, message_size_limit="10")
    got, logs = await converse(cfg, b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n"
                                    b"RCPT TO:<b@example.test>\r\nBDAT 11\r\n01234567890"
                                    b"bdat x\r\n", 6, cleanup=FakeCleanup())
    assert got[3:] == ["552 5.3.4 Chunk exceeds message size limit",
                       "521 5.5.4 Syntax: BDAT count [LAST]", ""]
    warnings = [e["event"] for e in logs if e["log_level"] == "warning" and "BDAT" in e["event"]]
    qid = next(e["queue_id"] for e in logs if e["event"] == "client")
    assert warnings == [
        f"{qid}: BDAT request from client.example[192.0.2.7] exceeds message size limit",
        f"{qid}: malformed BDAT command syntax from client.example[192.0.2.7]: bdat x"]


@trio_test
async def test_discarded_vrfy_and_etrn_keywords_only_leave_the_ehlo_reply(make_config):
    cfg = make_config(**PARAMS, smtpd_discard_ehlo_keywords="vrfy, etrn")
    got, _ = await converse(cfg, b"EHLO c\r\nVRFY <b@example.test>\r\n", 2)
    assert "VRFY" not in got[0] and "ETRN" not in got[0]
    assert got[1] == "252 2.0.0 <b@example.test>"
