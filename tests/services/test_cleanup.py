"""cleanup in-process: requests over memory streams, a real QueueStore, group commit."""

from __future__ import annotations

import functools
import re
import socket
import sys
import time

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from mailsys.ipc.errors import RemoteError
from mailsys.ipc.proto.cleanup import (CleanupRecipient, CleanupRequest, ForwardedClient, Queued,
                                       Rejected)
from mailsys.message.envelope import Notify
from mailsys.message.qid import new_qid
from mailsys.queue import Queue, QueueStore
from mailsys.runtime import ipc_io
from services.cleanup import Cleanup

MESSAGE = b"Subject: hi\r\nMessage-Id: <m1@client.example>\r\n\r\nbody line\r\n"


def trio_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


def request(content=MESSAGE, qid=None, rcpts=("bob@example.org",), **kw) -> CleanupRequest:
    fields = dict(queue_id=qid or new_qid(), sender="alice@example.com",
                  recipients=tuple(CleanupRecipient(r) for r in rcpts), content=content,
                  arrival_time=time.time(), client_name="client.example",
                  client_addr="192.0.2.7", helo="helo.example", protocol="ESMTP")
    fields.update(kw)
    return CleanupRequest(**fields)


class Service:
    """A Cleanup with its committer and trigger tasks running in a nursery."""

    def __init__(self, cleanup: Cleanup, nursery: trio.Nursery) -> None:
        self.cleanup = cleanup
        self.nursery = nursery

    async def channel(self) -> ipc_io.Channel:
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(functools.partial(
            ipc_io.serve, server, self.cleanup.handle, protocol="cleanup"))
        return await ipc_io.open_channel(client, protocol="cleanup", timeout=5)

    async def call(self, req: CleanupRequest):
        async with await self.channel() as chan:
            return await chan.call(req, expect=(Queued, Rejected), timeout=10)


async def running(cfg, store, nursery, **kw) -> Service:
    cleanup = Cleanup(cfg, store, **kw)
    nursery.start_soon(cleanup.commits.run)
    nursery.start_soon(cleanup.holds.run)
    nursery.start_soon(cleanup.trigger_qmgr)
    return Service(cleanup, nursery)


@pytest.fixture
def store(queue_dir):
    with QueueStore.open(queue_dir) as s:
        yield s


@trio_test
async def test_entry_is_committed_with_the_received_header(make_config, store):
    cfg = make_config()
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        req = request()
        with capture_logs() as logs:
            reply = await svc.call(req)
        nursery.cancel_scope.cancel()
    assert isinstance(reply, Queued) and reply.queue_id == req.queue_id
    env, queue = store.load(req.queue_id)
    assert queue is Queue.INCOMING
    assert env.sender == "alice@example.com"
    assert [r.address for r in env.recipients] == ["bob@example.org"]
    assert (env.client_name, env.client_addr, env.helo) == ("client.example", "192.0.2.7", "helo.example")
    assert env.rewrite_context == "remote"
    content = store.load_content(req.queue_id)
    assert content.startswith(
        b"Received: from helo.example (client.example [192.0.2.7])\r\n"
        b"\tby mx.example.test (mailsys) with ESMTP id " + req.queue_id.encode() + b"\r\n"
        b"\tfor <bob@example.org>; ")
    assert content.endswith(MESSAGE)          # remote mail: nothing added
    assert reply.size == env.size == len(content)
    assert {"event": "message-id", "queue_id": req.queue_id,
            "message_id": "<m1@client.example>", "log_level": "info"} in logs


@trio_test
async def test_local_mail_gets_missing_headers(make_config, store):
    cfg = make_config()
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        req = request(b"Subject: local\n\nhello\n", origin="sendmail", local=True, uid=1000,
                      protocol="local", fullname="Alice Example", client_name="", client_addr="",
                      helo="")
        reply = await svc.call(req)
        nursery.cancel_scope.cancel()
    content = store.load_content(reply.queue_id)
    head, _, body = content.partition(b"\r\n\r\n")
    assert body == b"hello\r\n"
    assert head.startswith(b"Received: by mx.example.test (mailsys, from userid 1000)\r\n\tid "
                           + req.queue_id.encode())
    assert f"Message-Id: <{req.queue_id}@mx.example.test>".encode() in head
    assert b"\r\nDate: " in head
    assert b"\r\nFrom: Alice Example <alice@example.com>" in head
    assert store.load(reply.queue_id)[0].rewrite_context == "local"


@trio_test
async def test_concurrent_requests_share_commits(make_config, store):
    cfg = make_config()
    n = 30
    replies = {}
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        reqs = [request(MESSAGE + b"%d\r\n" % i) for i in range(n)]

        async def one(req):
            replies[req.queue_id] = await svc.call(req)
        async with trio.open_nursery() as clients:
            for req in reqs:
                clients.start_soon(one, req)
        nursery.cancel_scope.cancel()
    assert all(isinstance(r, Queued) for r in replies.values()) and len(replies) == n
    for i, req in enumerate(reqs):
        assert store.load_content(req.queue_id).endswith(b"%d\r\n" % i)
    assert store.counts()[Queue.INCOMING] == n
    # Requests that came while a commit was in flight rode on the next one.
    assert svc.cleanup.commits.batches < n


@trio_test
async def test_reply_waits_for_the_commit(make_config, store, monkeypatch):
    cfg = make_config()
    committed = trio.Event()
    real = store.create_late

    def slow_create_late(take, queue=Queue.INCOMING):
        time.sleep(0.2)
        out = real(take, queue)
        return out
    monkeypatch.setattr(store, "create_late", slow_create_late)
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        req = request()
        start = trio.current_time()
        reply = await svc.call(req)
        elapsed = trio.current_time() - start
        # The reply came after the (slowed) commit, and the entry is there.
        assert elapsed >= 0.2 and store.exists(req.queue_id)
        nursery.cancel_scope.cancel()
    assert isinstance(reply, Queued)


@trio_test
async def test_the_content_as_received_is_let_go_before_the_commit(make_config, store,
                                                                    monkeypatch):
    # Under load many messages wait for the group commit at once: each
    # must hold only the stored form of its content, not also the copy
    # smtpd sent. Counted with references (bytes takes no weak one): at
    # the commit, only this test's own may be left.
    cfg = make_config()
    content = MESSAGE + b"x" * 70 + b"\r\n"
    refs_at_commit = []
    real = store.create_late

    def counting(take, queue=Queue.INCOMING):
        refs_at_commit.append(sys.getrefcount(content))
        return real(take, queue)
    monkeypatch.setattr(store, "create_late", counting)
    ours = sys.getrefcount(content)
    req = request(content=content)
    qid = req.queue_id
    assert sys.getrefcount(content) == ours + 1
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        pending = svc.cleanup.handle(req)
        del req
        reply = await pending
        nursery.cancel_scope.cancel()
    assert isinstance(reply, Queued) and store.exists(qid)
    assert refs_at_commit == [ours]


@trio_test
async def test_queue_full_replies_queue_full_and_stores_nothing(make_config, queue_dir):
    cfg = make_config()
    big = b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n"
    big = big * 600            # ~600 KB, more than the whole map
    with QueueStore.open(queue_dir, map_size=256 << 10, max_map_size=256 << 10) as store:
        async with trio.open_nursery() as nursery:
            svc = await running(cfg.with_overrides({"message_size_limit": "0"}), store, nursery)
            req = request(big)
            with pytest.raises(RemoteError) as e:
                await svc.call(req)
            ok = await svc.call(request())         # the store still works for small ones
            nursery.cancel_scope.cancel()
        assert e.value.code == "queue_full"
        assert not store.exists(req.queue_id)
        assert store.counts()[Queue.INCOMING] == 1 and store.exists(ok.queue_id)


@trio_test
async def test_duplicate_queue_id_is_refused(make_config, store):
    cfg = make_config()
    qid = new_qid()
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        first = await svc.call(request(b"Subject: first\r\n\r\n", qid=qid))
        with pytest.raises(RemoteError) as e:
            await svc.call(request(b"Subject: second\r\n\r\n", qid=qid))
        # Twice in one batch: one wins, the other is refused, neighbours unharmed.
        other, same = new_qid(), new_qid()
        results = {}

        async def one(key, req):
            try:
                results[key] = await svc.call(req)
            except RemoteError as err:
                results[key] = err
        async with trio.open_nursery() as clients:
            clients.start_soon(one, "a", request(b"Subject: a\r\n\r\n", qid=same))
            clients.start_soon(one, "b", request(b"Subject: b\r\n\r\n", qid=same))
            clients.start_soon(one, "c", request(b"Subject: c\r\n\r\n", qid=other))
        nursery.cancel_scope.cancel()
    assert isinstance(first, Queued)
    assert e.value.code == "write_error" and "duplicate" in e.value.text
    assert store.load_content(qid).endswith(b"Subject: first\r\n\r\n")
    assert isinstance(results["c"], Queued)
    outcomes = sorted(type(results[k]).__name__ for k in "ab")
    assert outcomes == ["Queued", "RemoteError"]
    assert store.counts()[Queue.INCOMING] == 3


@trio_test
async def test_too_many_hops_is_rejected(make_config, store):
    cfg = make_config()
    hops = b"".join(b"Received: from h%d.example by x; Fri, 27 Nov 2026 00:00:00 +0000\r\n" % i
                    for i in range(49))
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        req = request(hops + b"Subject: loop\r\n\r\nbody\r\n")
        reply = await svc.call(req)
        ok = await svc.call(request(b"".join(hops.splitlines(True)[:48]) + b"\r\nbody\r\n"))
        nursery.cancel_scope.cancel()
    assert reply == Rejected(554, "5.4.0", "Error: too many hops")
    assert not store.exists(req.queue_id)
    assert isinstance(ok, Queued)


@trio_test
async def test_bad_queue_id_and_size_limit(make_config, store):
    cfg = make_config(message_size_limit="1000")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with pytest.raises(RemoteError) as e:
            await svc.call(request(qid="not-a-qid"))
        big = await svc.call(request(b"Subject: x\r\n\r\n" + b"y" * 2000))
        nursery.cancel_scope.cancel()
    assert e.value.code == "protocol"
    assert big == Rejected(552, "5.3.4", "Error: message file too big")
    assert store.counts()[Queue.INCOMING] == 0


class FakeQmgr:
    """qmgr's public socket: the trigger bytes as they arrive, and how many
    connections carried them."""

    def __init__(self, queue_dir) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(queue_dir / "public" / "qmgr"))
        sock.listen()
        self.listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        self.send, self.triggers = trio.open_memory_channel(100)
        self.connections = 0

    async def serve(self) -> None:
        async with self.listener, trio.open_nursery() as nursery:
            while True:
                stream = await self.listener.accept()
                self.connections += 1
                nursery.start_soon(self._read, stream)

    async def _read(self, stream) -> None:
        async with stream:
            while chunk := await stream.receive_some(1024):
                await self.send.send(chunk)


@trio_test
async def test_qmgr_is_triggered_after_commit(make_config, store, queue_dir):
    qmgr = FakeQmgr(queue_dir)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(qmgr.serve)
        svc = await running(make_config(), store, nursery)
        reply = await svc.call(request())
        assert store.exists(reply.queue_id)
        with trio.fail_after(5):
            assert await qmgr.triggers.receive() == b"I"
        nursery.cancel_scope.cancel()


@trio_test
async def test_triggers_that_follow_closely_fold_into_one(make_config, store, queue_dir):
    qmgr = FakeQmgr(queue_dir)
    spacing = 1.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(qmgr.serve)
        svc = await running(make_config(), store, nursery, trigger_spacing=spacing)
        await svc.call(request())
        with trio.fail_after(spacing / 2):          # the first one is not held back
            assert await qmgr.triggers.receive() == b"I"
        first = trio.current_time()
        for _ in range(3):                           # three more commits, one after the other
            await svc.call(request())
        with trio.fail_after(spacing * 3):
            assert await qmgr.triggers.receive() == b"I"
        # Not before the spacing is over (less the first one's way here).
        assert trio.current_time() - first >= spacing - 0.1
        with trio.move_on_after(spacing * 1.2) as more:
            await qmgr.triggers.receive()
        assert more.cancelled_caught, "the commits got more than one trigger"
        assert svc.cleanup.commits.batches == 4
        nursery.cancel_scope.cancel()


@trio_test
async def test_triggers_share_one_connection_while_they_come_often(make_config, store, queue_dir):
    qmgr = FakeQmgr(queue_dir)
    spacing = 0.05                                   # well within the line's reuse window
    async with trio.open_nursery() as nursery:
        nursery.start_soon(qmgr.serve)
        svc = await running(make_config(), store, nursery, trigger_spacing=spacing)
        for _ in range(5):
            await svc.call(request())
            with trio.fail_after(5):
                assert await qmgr.triggers.receive() == b"I"
            await trio.sleep(spacing)
        assert qmgr.connections == 1
        # Quiet for longer than the server would keep the connection: the next
        # trigger goes on a new one, and arrives.
        await trio.sleep(ipc_io.TRIGGER_IDLE / 2 + 0.1)
        await svc.call(request())
        with trio.fail_after(5):
            assert await qmgr.triggers.receive() == b"I"
        assert qmgr.connections == 2
        nursery.cancel_scope.cancel()


@trio_test
async def test_prepend_bcc_and_filter_actions(make_config, store):
    async with trio.open_nursery() as nursery:
        svc = await running(make_config(), store, nursery)
        req = request(rcpts=("bob@example.org",), prepend=("X-Flag: yes", "X-Two: 2"),
                      bcc=("arch@example.net", "bob@example.org", "arch@example.net"),
                      filter="smtp:[127.0.0.1]:10025")
        reply = await svc.call(req)
        nursery.cancel_scope.cancel()
    assert isinstance(reply, Queued)
    env, queue = store.load(req.queue_id)
    assert queue is Queue.INCOMING
    assert [(r.address, r.notify) for r in env.recipients] == \
        [("bob@example.org", ()), ("arch@example.net", (Notify.NEVER,))]
    assert env.attr("filter") == "smtp:[127.0.0.1]:10025"
    assert store.load_content(req.queue_id).startswith(b"X-Flag: yes\r\nX-Two: 2\r\nReceived: from ")


@trio_test
async def test_redirect_sends_every_recipient_to_one_address(make_config, store):
    async with trio.open_nursery() as nursery:
        svc = await running(make_config(), store, nursery)
        req = request(rcpts=("bob@example.org", "carol@example.org"), bcc=("arch@example.net",),
                      redirect="boss@example.net")
        await svc.call(req)
        nursery.cancel_scope.cancel()
    env, _ = store.load(req.queue_id)
    assert [(r.address, r.orig) for r in env.recipients] == [("boss@example.net", "bob@example.org")]


@trio_test
async def test_hold_goes_to_the_hold_queue_and_discard_stores_nothing(make_config, store):
    async with trio.open_nursery() as nursery:
        svc = await running(make_config(), store, nursery)
        held = request(hold=True)
        with capture_logs() as logs:
            assert isinstance(await svc.call(held), Queued)
            dropped = request(discard=True, hold=True, content=b"no header at all")
            reply = await svc.call(dropped)
        nursery.cancel_scope.cancel()
    assert store.load(held.queue_id)[1] is Queue.HOLD
    assert isinstance(reply, Queued) and reply.queue_id == dropped.queue_id
    assert [e.queue_id for e, _ in store.scan_all()] == [held.queue_id]
    assert [log.get("queue_id") for log in logs] == [held.queue_id]    # its message-id line only


@trio_test
async def test_header_checks(make_config, store, tmp_path):
    # What Postfix 3.7's cleanup logged for the same table and headers.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject:.*viagra/ REJECT\n/^Subject:.*warnme/ WARN looks odd\n"
                      "/^X-Drop:/ IGNORE\n/^Subject:.*holdme/ HOLD\n"
                      "/^Subject:.*discardme/ DISCARD gone\n/^Subject:.*copy/ BCC arch@example.net\n")
    cfg = make_config(header_checks=f"regexp:{checks}")
    results = {}
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            for subject in ("buy viagra", "warnme please", "holdme now", "discardme x", "copy me"):
                req = request(content=f"Subject: {subject}\r\nX-Drop: yes\r\n\r\nbody\r\n".encode(),
                              client_name="unknown", client_addr="127.0.0.1", helo="vm",
                              sender="a@x.test", rcpts=("b@example.net",))
                results[subject.split()[0]] = (req.queue_id, await svc.call(req))
        nursery.cancel_scope.cancel()
    tail = "from unknown[127.0.0.1]; from=<a@x.test> to=<b@example.net> proto=ESMTP helo=<vm>"
    lines = [(e.get("queue_id"), e["event"]) for e in logs if e["event"] != "message-id"]
    qid = {k: v[0] for k, v in results.items()}
    assert lines == [
        (qid["buy"], f"reject: header Subject: buy viagra {tail}: 5.7.1 message content rejected"),
        (qid["warnme"], f"warning: header Subject: warnme please {tail}: looks odd"),
        (qid["holdme"], f"hold: header Subject: holdme now {tail}"),
        (qid["discardme"], f"discard: header Subject: discardme x {tail}: gone"),
        (qid["copy"], f"bcc: header Subject: copy me {tail}: arch@example.net"),
    ]
    assert results["buy"][1] == Rejected(550, "5.7.1", "message content rejected")
    assert all(isinstance(r, Queued) for _, r in list(results.values())[1:])
    stored = {e.queue_id: (q, [r.address for r in e.recipients]) for e, q in store.scan_all()}
    assert stored == {qid["warnme"]: (Queue.INCOMING, ["b@example.net"]),
                      qid["holdme"]: (Queue.HOLD, ["b@example.net"]),
                      qid["copy"]: (Queue.INCOMING, ["b@example.net", "arch@example.net"])}
    assert b"X-Drop" not in store.load_content(qid["warnme"])


@trio_test
async def test_pass_and_redirect_end_the_content_checks(make_config, store, tmp_path):
    # cleanup_message.c cleanup_act(): PASS (logged "pass:") and REDIRECT
    # clear CLEANUP_FLAG_FILTER_ALL, so no later header or body rule applies.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject: pass/ PASS trusted\n/^Subject: redirect/ REDIRECT x@example.net\n"
                      "/^X-Spam:/ REJECT spam\n")
    (tmp_path / "body").write_text("/^spam/ REJECT body spam\n")
    cfg = make_config(header_checks=f"regexp:{checks}", body_checks=f"regexp:{tmp_path / 'body'}")
    replies = {}
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            for subject in ("pass me", "redirect me", "plain"):
                req = request(content=f"Subject: {subject}\r\nX-Spam: yes\r\n\r\nspam\r\n"
                              .encode(), client_name="unknown", client_addr="127.0.0.1",
                              helo="vm", sender="a@x.test", rcpts=("b@example.net",))
                replies[subject.split()[0]] = (req.queue_id, await svc.call(req))
        nursery.cancel_scope.cancel()
    assert isinstance(replies["pass"][1], Queued) and isinstance(replies["redirect"][1], Queued)
    assert replies["plain"][1] == Rejected(550, "5.7.1", "spam")
    tail = "from unknown[127.0.0.1]; from=<a@x.test> to=<b@example.net> proto=ESMTP helo=<vm>"
    events = [e["event"] for e in logs if e["event"] != "message-id"]
    assert events[:2] == [f"pass: header Subject: pass me {tail}: trusted",
                          f"redirect: header Subject: redirect me {tail}: x@example.net"]
    env, _ = store.load(replies["redirect"][0])
    assert [r.address for r in env.recipients] == ["x@example.net"]


@trio_test
async def test_header_and_body_checks_edits_are_logged_and_bad_entries_warned(
        make_config, store, tmp_path):
    # Postfix 3.7.11's cleanup for the same tables and message (one
    # recipient here; cleanup_message.c cleanup_act()): PREPEND, REPLACE and
    # STRIP are logged with the text they put in, and an entry it cannot
    # use is a warning without queue ID, naming the parameter.
    (tmp_path / "header").write_text(
        "/^Subject: prep/ PREPEND X-Prep: yes\n/^X-Warn:/ WARN watch\n"
        "/^X-Bad-Filter:/ FILTER nocolon\n/^X-Bad-Redir:/ REDIRECT nohost\n"
        "/^X-Strip:/ STRIP stripped it\n/^X-Bogus:/ FROBNICATE now\n"
        "/^X-Bad-Prep:/ PREPEND not a header\n/^X-Repl:/ REPLACE X-Replaced: 1\n")
    (tmp_path / "body").write_text("/^bodyprep/ PREPEND inserted line\n"
                                   "/^bodyrepl/ REPLACE new line\n/^bodybogus/ FROBNICATE x\n")
    cfg = make_config(header_checks=f"regexp:{tmp_path / 'header'}",
                      body_checks=f"regexp:{tmp_path / 'body'}")
    message = (b"Subject: prep this\r\nX-Warn: a\r\nX-Bad-Filter: x\r\nX-Bad-Redir: y\r\n"
               b"X-Strip: z\r\nX-Bogus: b\r\nX-Bad-Prep: c\r\nX-Repl: old\r\n\r\n"
               b"bodyprep 1\r\nbodyrepl 2\r\nbodybogus 3\r\n")
    req = request(content=message, client_name="unknown", client_addr="127.0.0.1",
                  helo="client.example", rcpts=("third@remote.example",))
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            assert isinstance(await svc.call(req), Queued)
        nursery.cancel_scope.cancel()
    tail = ("from unknown[127.0.0.1]; from=<alice@example.com> to=<third@remote.example> "
            "proto=ESMTP helo=<client.example>")
    info = [e["event"] for e in logs
            if e["log_level"] == "info" and e["event"] != "message-id"]
    assert all(e.get("queue_id") == req.queue_id for e in logs if e["log_level"] == "info")
    assert info == [f"prepend: header Subject: prep this {tail}: X-Prep: yes",
                    f"warning: header X-Warn: a {tail}: watch",
                    f"strip: header X-Strip: z {tail}: stripped it",
                    f"replace: header X-Repl: old {tail}: X-Replaced: 1",
                    f"prepend: body bodyprep 1 {tail}: inserted line",
                    f"replace: body bodyrepl 2 {tail}: new line"]
    warnings = [(e["event"], e.get("queue_id")) for e in logs if e["log_level"] == "warning"]
    assert warnings == [
        ("bad FILTER command nocolon in header_checks -- need transport:destination", None),
        ('bad REDIRECT target "nohost" in header_checks map -- need user@domain', None),
        ("unknown command in header_checks map: FROBNICATE now", None),
        ('bad PREPEND header text "not a header" in header_checks map -- need '
         '"headername: headervalue"', None),
        ("unknown command in body_checks map: FROBNICATE x", None)]
    content = store.load_content(req.queue_id)
    assert b"X-Prep: yes\r\nSubject: prep this\r\n" in content and b"X-Strip" not in content
    assert b"X-Replaced: 1\r\n" in content and b"X-Repl: old" not in content
    assert content.endswith(b"\r\n\r\ninserted line\r\nbodyprep 1\r\nnew line\r\n"
                            b"bodybogus 3\r\n")
    env, _ = store.load(req.queue_id)
    assert env.attr("filter") is None and [r.address for r in env.recipients] == [
        "third@remote.example"]


@trio_test
async def test_forwarded_client_is_logged_and_stored_but_not_in_received(make_config, store,
                                                                        tmp_path):
    # Postfix 3.7.11 after "XFORWARD NAME=mx.example.org ADDR=198.51.100.7
    # HELO=orig.example PROTO=SMTP" from 127.0.0.1: "QID: hold: header
    # Subject: holdme from mx.example.org[198.51.100.7]; from=<a@b.example>
    # to=<r@example.net> proto=SMTP helo=<orig.example>", and the Received:
    # header names the actual client.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject:.*holdme/ HOLD\n")
    cfg = make_config(header_checks=f"regexp:{checks}")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        req = request(content=b"Subject: holdme\r\n\r\nhi\r\n", client_name="localhost",
                      client_addr="127.0.0.1", helo="filter", sender="a@b.example",
                      rcpts=("r@example.net",),
                      forwarded=ForwardedClient("mx.example.org", "198.51.100.7", 0,
                                                "orig.example", "SMTP", "ABC123"))
        with capture_logs() as logs:
            assert isinstance(await svc.call(req), Queued)
        nursery.cancel_scope.cancel()
    assert [e["event"] for e in logs if e["event"] != "message-id"] == [
        "hold: header Subject: holdme from mx.example.org[198.51.100.7]; from=<a@b.example> "
        "to=<r@example.net> proto=SMTP helo=<orig.example>"]
    env, queue = store.load(req.queue_id)
    assert (env.client_name, env.client_addr, env.helo, env.protocol, env.log_ident) == \
        ("mx.example.org", "198.51.100.7", "orig.example", "SMTP", "ABC123")
    assert store.load_content(req.queue_id).startswith(
        b"Received: from filter (localhost [127.0.0.1])\r\n")


@trio_test
async def test_header_checks_see_attachment_headers_unless_mime_is_off(make_config, store, tmp_path):
    # The common rule: mime_header_checks defaults to $header_checks.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Content-(Type|Disposition):.*name=.*\\.(exe|scr)/ REJECT no executables\n")
    message = (b"Subject: see attached\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
               b"Content-Type: application/octet-stream;\r\n\tname=\"setup.exe\"\r\n\r\nTVqQ\r\n"
               b"--b--\r\n")
    replies = []
    for disabled in ("no", "yes"):
        cfg = make_config(header_checks=f"regexp:{checks}", disable_mime_input_processing=disabled)
        async with trio.open_nursery() as nursery:
            svc = await running(cfg, store, nursery)
            with capture_logs() as logs:
                replies.append(await svc.call(request(content=message)))
            nursery.cancel_scope.cancel()
        if disabled == "no":
            assert [e["event"] for e in logs] == [
                'reject: header Content-Type: application/octet-stream;??name="setup.exe" from '
                "client.example[192.0.2.7]; from=<alice@example.com> to=<bob@example.org> "
                "proto=ESMTP helo=<helo.example>: 5.7.1 no executables"]
    assert replies[0] == Rejected(550, "5.7.1", "no executables")
    assert isinstance(replies[1], Queued)


@pytest.mark.parametrize("mime_checks, logged", [
    ("$header_checks", [("Subject: hi", "header"), ("Content-Type: text/plain", "header")]),
    ("mime", [("Subject: hi", "header"), ("Content-Type: text/plain", "mime")]),
    ("", [("Subject: hi", "header")]),           # no mime_header_checks: not checked at all
])
@trio_test
async def test_the_message_s_mime_headers_go_to_mime_header_checks(make_config, store, tmp_path,
                                                                   mime_checks, logged):
    # Postfix's cleanup checks a primary Content-* or MIME-Version header
    # with mime_header_checks, not header_checks (seen live, 3.7.11).
    (tmp_path / "header").write_text("/^(Subject|Content-Type):/ WARN header\n")
    (tmp_path / "mime").write_text("/^Content-Type:/ WARN mime\n")
    cfg = make_config(header_checks=f"regexp:{tmp_path / 'header'}",
                      mime_header_checks=mime_checks.replace("mime", f"regexp:{tmp_path / 'mime'}"))
    message = b"Subject: hi\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            assert isinstance(await svc.call(request(content=message)), Queued)
        nursery.cancel_scope.cancel()
    warned = [re.fullmatch(r"warning: header (.*) from .*: (\w+)", e["event"]).groups()
              for e in logs if e["event"].startswith("warning: ")]
    assert warned == logged


@trio_test
async def test_body_checks(make_config, store, tmp_path):
    checks = tmp_path / "body_checks"
    checks.write_text("/^buy now$/ REJECT 5.7.0 no sales\n/secret/ REPLACE [removed]\n")
    cfg = make_config(body_checks=f"regexp:{checks}")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            refused = await svc.call(request(content=b"Subject: s\r\n\r\nhi\r\nbuy now\r\n"))
            kept = request(content=b"Subject: s\r\n\r\nthe secret is out\r\n")
            assert isinstance(await svc.call(kept), Queued)
        nursery.cancel_scope.cancel()
    assert refused == Rejected(550, "5.7.0", "no sales")
    assert logs[0]["event"] == ("reject: body buy now from client.example[192.0.2.7]; "
                                "from=<alice@example.com> to=<bob@example.org> proto=ESMTP "
                                "helo=<helo.example>: 5.7.0 no sales")
    assert store.load_content(kept.queue_id).endswith(b"\r\n\r\n[removed]\r\n")


@trio_test
async def test_no_header_body_checks_skips_the_content_checks(make_config, store, tmp_path):
    checks = tmp_path / "checks"
    checks.write_text("/viagra/ REJECT\n")
    cfg = make_config(header_checks=f"regexp:{checks}", body_checks=f"regexp:{checks}")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        header = request(content=b"Subject: viagra\r\n\r\nbody\r\n")
        body = request(content=b"Subject: hi\r\n\r\nviagra\r\n")
        refused = [await svc.call(header), await svc.call(body)]
        passed = [await svc.call(request(content=r.content, receive_override_options=(
            "no_unknown_recipient_checks", "no_header_body_checks"))) for r in (header, body)]
        nursery.cancel_scope.cancel()
    assert refused == [Rejected(550, "5.7.1", "message content rejected")] * 2
    assert all(isinstance(r, Queued) for r in passed)


@trio_test
async def test_header_addresses_are_rewritten_for_local_clients_only(make_config, store):
    cfg = make_config(myorigin="example.com",
                      sender_canonical_maps="inline:{ root@example.com=admin@example.com }")
    content = b"From: Root <root>\r\nTo: bob, carol@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        local = await svc.call(request(content=content, local=True))
        remote = await svc.call(request(content=content, local=False))
        nursery.cancel_scope.cancel()
    assert b"From: Root <admin@example.com>\r\nTo: bob@example.com, carol@example.net\r\n" \
        in store.load_content(local.queue_id)
    assert content.split(b"\r\n\r\n")[0] in store.load_content(remote.queue_id)


@trio_test
async def test_message_reject_characters_refuse_the_message(make_config, store):
    # Seen live with Postfix 3.7.11 (message_reject_characters = \001):
    # "550 5.7.1 disallowed character" and the cleanup line below.
    cfg = make_config(message_reject_characters=r"\001")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            refused = await svc.call(request(content=b"Subject: hello\x01there\r\n\r\nbody\r\n"))
        skipped = await svc.call(request(content=b"Subject: x\r\n\r\nbody \x01\r\n",
                                         receive_override_options=("no_header_body_checks",)))
        nursery.cancel_scope.cancel()
    assert refused == Rejected(550, "5.7.1", "disallowed character")
    assert logs[0]["event"] == ("reject: content Subject: hello?there from "
                                "client.example[192.0.2.7]; from=<alice@example.com> "
                                "to=<bob@example.org> proto=ESMTP helo=<helo.example>: "
                                "5.7.1 disallowed character")
    assert isinstance(skipped, Queued)


@trio_test
async def test_message_strip_characters_are_removed_before_header_checks(
        make_config, store, tmp_path):
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject: bad$/ REJECT\n")
    cfg = make_config(message_strip_characters=r"\177", header_checks=f"regexp:{checks}")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        kept = request(content=b"Subject: fi\x7fne\r\n\r\nbo\x7fdy\r\n")
        assert isinstance(await svc.call(kept), Queued)
        refused = await svc.call(request(content=b"Subject: b\x7fad\r\n\r\nbody\r\n"))
        nursery.cancel_scope.cancel()
    stored = store.load_content(kept.queue_id)
    assert b"Subject: fine\r\n" in stored and stored.endswith(b"\r\n\r\nbody\r\n")
    assert refused == Rejected(550, "5.7.1", "message content rejected")


@trio_test
async def test_strict_8bitmime_refuses_8bit_headers(make_config, store):
    # Postfix 3.7.11 with strict_8bitmime = yes: "550 5.6.0 improper use of
    # 8-bit data in message header", logged without proto= and helo=.
    cfg = make_config(strict_8bitmime="yes")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            refused = await svc.call(request(content=b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n"))
        nursery.cancel_scope.cancel()
    assert refused == Rejected(550, "5.6.0", "improper use of 8-bit data in message header")
    assert logs[0]["event"] == (
        "reject: mime-error improper use of 8-bit data in message header: Subject: caf?? "
        "from client.example[192.0.2.7]; from=<alice@example.com> to=<bob@example.org>")


@trio_test
async def test_content_lines_name_the_last_recipient_as_rewritten(make_config, store, tmp_path):
    # Postfix 3.7.11, RCPT TO first@, Second@, third@ and a header_checks
    # WARN: "... from=<alice@example.com> to=<third@remote.example> ...":
    # cleanup names its state->recip (cleanup_addr.c), the last recipient
    # after the canonical maps (not after virtual aliases).
    (tmp_path / "header").write_text("/^X-Warn:/ WARN watch\n")
    cfg = make_config(header_checks=f"regexp:{tmp_path / 'header'}", strict_8bitmime="yes",
                      recipient_canonical_maps="inline:{ last@remote.example=third@remote.example }",
                      virtual_alias_maps="inline:{ third@remote.example=v@remote.example }")
    rcpts = ("first@remote.example", "Second@Remote.example", "last@remote.example")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            kept = request(content=b"X-Warn: a\r\n\r\nbody\r\n", rcpts=rcpts)
            assert isinstance(await svc.call(kept), Queued)
            await svc.call(request(content=b"Subject: caf\xc3\xa9\r\n\r\nbody\r\n", rcpts=rcpts))
            unmapped = request(content=b"X-Warn: a\r\n\r\nbody\r\n", rcpts=rcpts,
                               receive_override_options=("no_address_mappings",))
            assert isinstance(await svc.call(unmapped), Queued)
        nursery.cancel_scope.cancel()
    lines = [e["event"] for e in logs if e["event"] != "message-id"]
    assert [line.split("; ")[1].split(" proto=")[0] for line in lines] == [
        "from=<alice@example.com> to=<third@remote.example>",
        "from=<alice@example.com> to=<third@remote.example>",
        "from=<alice@example.com> to=<last@remote.example>"]
    assert lines[1].startswith("reject: mime-error ")
    assert [r.address for r in store.load(kept.queue_id)[0].recipients][-1] == "v@remote.example"


@pytest.mark.parametrize("maps", [{}, {"recipient_canonical_maps":
                                        "inline:{ old@example.org=new@example.org }",
                                        "always_bcc": "arch@example.org"}])
@trio_test
async def test_recipients_without_orcpt_get_one(make_config, store, maps):
    # Postfix 3.7.11, "sendmail bob@remote.example" then expired: the notice
    # says "Original-Recipient: rfc822;bob@remote.example". cleanup gives a
    # recipient without ORCPT one of its address after the canonical maps
    # (cleanup_addr.c); an automatic BCC gets none.
    cfg = make_config(**maps)
    req = request(rcpts=(), origin="sendmail", local=True, protocol="local", recipients=(
        CleanupRecipient("old@example.org"), CleanupRecipient("b@example.org", orcpt="rfc822;B"),
        CleanupRecipient("bob@example.com", orig="bob")))
    utf8 = request(smtputf8=True, recipients=(CleanupRecipient("j\u00f6rg@example.org"),))
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        for r in (req, utf8):
            assert isinstance(await svc.call(r), Queued)
        nursery.cancel_scope.cancel()
    first = "new@example.org" if maps else "old@example.org"
    assert [(r.address, r.orig, r.orcpt) for r in store.load(req.queue_id)[0].recipients] == [
        (first, "old@example.org" if maps else "", f"rfc822;{first}"),
        ("b@example.org", "", "rfc822;B"),
        ("bob@example.com", "bob", "rfc822;bob@example.com"),
        *([("arch@example.org", "", "")] if maps else [])]
    assert store.load(utf8.queue_id)[0].recipients[0].orcpt == "utf-8;j\u00f6rg@example.org"


@trio_test
async def test_content_transfer_encoding_8bit_makes_the_message_8bitmime(make_config, store):
    cfg = make_config()
    content = b"Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody\r\n"
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        detected = request(content=content)
        # Postfix 3.7.11 relayed this one with BODY=8BITMIME as well.
        declared = request(content=content, body_type="7BIT")
        plain = request(body_type="7BIT")
        for r in (detected, declared, plain):
            assert isinstance(await svc.call(r), Queued)
        nursery.cancel_scope.cancel()
    assert [store.load(r.queue_id)[0].body_type for r in (detected, declared, plain)] \
        == ["8BITMIME", "8BITMIME", "7BIT"]


def local(content: bytes, **kw) -> CleanupRequest:
    """A request as the pickup service hands a maildrop file over."""
    fields = dict(origin="sendmail", local=True, protocol="local", uid=1000, client_name="",
                  client_addr="", helo="", bounce=True)
    fields.update(kw)
    return request(content=content, **fields)


@trio_test
async def test_a_refusal_with_bounce_set_is_queued_with_every_recipient_bounced(
        make_config, store, tmp_path):
    # Postfix's cleanup_bounce(): each recipient bounced with the reason,
    # the header alone returned for a refused content or size.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject: spam/ REJECT\n/^Subject: custom/ REJECT 5.7.0 not here\n")
    cfg = make_config(header_checks=f"regexp:{checks}", message_size_limit="5000")
    hops = b"".join(b"Received: from h%d.example by x; Fri, 27 Nov 2026 00:00:00 +0000\r\n" % i
                    for i in range(50))
    reqs = {"spam": local(b"Subject: spam\r\n\r\nthe body\r\n", rcpts=("b1@x.test", "b2@x.test"),
                          ret="FULL"),
            "custom": local(b"Subject: custom\nX-Bare: lf\n\nbody\n"),
            "big": local(b"Subject: big\r\n\r\n" + b"y" * 6000),
            "hops": local(hops + b"Subject: loop\r\n\r\nlooping body\r\n")}
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            replies = {k: await svc.call(r) for k, r in reqs.items()}
        nursery.cancel_scope.cancel()
    for key, req in reqs.items():
        env, queue = store.load(req.queue_id)
        assert queue is Queue.INCOMING
        assert replies[key] == Queued(queue_id=req.queue_id, size=env.size)
    expected = {"spam": ("5.7.1", "message content rejected"), "custom": ("5.7.0", "not here"),
                "big": ("5.3.4", "message file too big"), "hops": ("5.4.0", "too many hops")}
    for key, (dsn, reason) in expected.items():
        env, _ = store.load(reqs[key].queue_id)
        assert [(r.state.value, r.dsn_status, r.reason, r.notified) for r in env.recipients] \
            == [("bounced", dsn, reason, False)] * len(reqs[key].recipients)
        assert env.sender == "alice@example.com" and env.attr("uid") == "1000"
    spam = store.load_content(reqs["spam"].queue_id)
    assert spam.startswith(b"Received: by mx.example.test (mailsys, from userid 1000)\r\n")
    assert spam.endswith(b"\r\nSubject: spam\r\n")              # no body, RET=HDRS
    assert store.load(reqs["spam"].queue_id)[0].ret == "HDRS"
    assert store.load_content(reqs["custom"].queue_id).endswith(
        b"\r\nSubject: custom\r\nX-Bare: lf\r\n")
    assert b"yyy" not in store.load_content(reqs["big"].queue_id)
    # Too many hops: the whole message, as the sender's RET says.
    assert store.load_content(reqs["hops"].queue_id).endswith(b"\r\n\r\nlooping body\r\n")
    assert store.load(reqs["hops"].queue_id)[0].ret == ""
    status = [(e["queue_id"], e["to"], e["relay"], e["dsn"], e["status"], e["reason"],
               e["delays"][1:]) for e in logs if e["event"] == "status"]
    spam_id = reqs["spam"].queue_id
    assert status[:2] == [(spam_id, "b1@x.test", "none", "5.7.1", "bounced",
                           "message content rejected", (0, 0, 0)),
                          (spam_id, "b2@x.test", "none", "5.7.1", "bounced",
                           "message content rejected", (0, 0, 0))]
    assert len(status) == 5


@trio_test
async def test_a_returned_message_has_its_addresses_rewritten(make_config, store, tmp_path):
    # Postfix's cleanup rewrites each envelope record as it arrives, so the
    # queue file that cleanup_bounce() reads holds the canonical sender and
    # the virtual aliases' recipients: the notice goes to the sender as
    # rewritten, and names the recipients so.
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject: spam/ REJECT\n")
    cfg = make_config(header_checks=f"regexp:{checks}",
                      sender_canonical_maps="inline:{ alice@example.com=a.smith@example.com }",
                      virtual_alias_maps="inline:{ { b1@x.test=c1@y.test, c2@y.test } }")
    req = local(b"Subject: spam\r\n\r\nbody\r\n", rcpts=("b1@x.test", "b3@x.test"))
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        with capture_logs() as logs:
            assert isinstance(await svc.call(req), Queued)
        nursery.cancel_scope.cancel()
    env, _ = store.load(req.queue_id)
    assert env.sender == "a.smith@example.com"
    assert [(r.address, r.orig, r.state.value) for r in env.recipients] == [
        ("c1@y.test", "b1@x.test", "bounced"), ("c2@y.test", "b1@x.test", "bounced"),
        ("b3@x.test", "", "bounced")]
    assert [(e["to"], e["orig_to"]) for e in logs if e["event"] == "status"] == [
        ("c1@y.test", "b1@x.test"), ("c2@y.test", "b1@x.test"), ("b3@x.test", "b3@x.test")]


@trio_test
async def test_temporary_refusals_and_requests_without_bounce_are_answered(
        make_config, store, tmp_path):
    checks = tmp_path / "header_checks"
    checks.write_text("/^Subject: later/ REJECT 4.7.1 try later\n/^Subject: spam/ REJECT\n")
    cfg = make_config(header_checks=f"regexp:{checks}")
    async with trio.open_nursery() as nursery:
        svc = await running(cfg, store, nursery)
        later = await svc.call(local(b"Subject: later\r\n\r\nbody\r\n"))
        direct = await svc.call(local(b"Subject: spam\r\n\r\nbody\r\n", bounce=False))
        nursery.cancel_scope.cancel()
    # Postfix 3.7.11's smtpd answered "451 4.7.0 try later" to header_checks
    # "REJECT 4.7.0 try later" (seen live): CLEANUP_STAT_DEFER is 451.
    assert later == Rejected(451, "4.7.1", "try later")
    assert direct == Rejected(550, "5.7.1", "message content rejected")
    assert store.counts()[Queue.INCOMING] == 0
