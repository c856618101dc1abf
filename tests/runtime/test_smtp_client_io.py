"""SmtpSession's deadlines: each read and write gets the stage's timeout of
its own (not the exchange as a whole), a read that outlasts it fails with
Postfix's text, and a read that completes as its deadline passes counts."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from mailsys.runtime.smtp_client_io import SessionError, SmtpSession, Target, TlsPolicy
from mailsys.smtp.client import ClientConnection, Rcpt

T = 10.0
TIMEOUTS = {"smtp_helo_timeout": T, "smtp_mail_timeout": T, "smtp_rcpt_timeout": T,
            "smtp_data_init_timeout": T, "smtp_data_xfer_timeout": T,
            "smtp_data_done_timeout": T, "smtp_rset_timeout": T}
EHLO = b"250-mx.test\r\n250 PIPELINING\r\n"
GROUP_REPLIES = [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"354 go ahead\r\n"]


class LateStream(trio.abc.Stream):
    """Delivers each read `late` seconds after it arrived, shielded: the
    read completes even when its deadline passed meanwhile."""

    def __init__(self, inner: trio.abc.Stream, late: float) -> None:
        self.inner, self.late = inner, late

    async def receive_some(self, max_bytes=None):
        data = await self.inner.receive_some(max_bytes)
        with trio.CancelScope(shield=True):
            await trio.sleep(self.late)
        return data

    async def send_all(self, data):
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self):
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self):
        await self.inner.aclose()


async def lines(stream, n: int, buf: bytearray) -> list[bytes]:
    while buf.count(b"\r\n") < n:
        buf += await stream.receive_some(4096)
    *got, rest = bytes(buf).split(b"\r\n", n)
    buf[:] = rest
    return got


async def exchange(server_script, late: float = 0.0) -> tuple[object, list]:
    """A session through a memory stream against server_script(stream); the
    TransactionResult (or the SessionError) and what the server received."""
    client, server = trio.testing.memory_stream_pair()
    stream = LateStream(client, late) if late else client
    session = SmtpSession(stream, ClientConnection("client.test"), Target("mx.test", "192.0.2.1"),
                          TIMEOUTS)
    seen: list = []
    out: dict = {}

    async def run_client():
        try:
            await session.hello(TlsPolicy())
            out["result"] = await session.send_mail("a@b.test", [Rcpt("c@d.test")], b"hi\r\n")
        except SessionError as e:
            out["result"] = e
    async with trio.open_nursery() as n:
        n.start_soon(server_script, server, seen)
        await run_client()
        n.cancel_scope.cancel()
    return out["result"], seen


def run(coro_fn, *args):
    return trio.run(coro_fn, *args, clock=trio.testing.MockClock(autojump_threshold=0))


async def slow_server(stream, seen, pause: float):
    buf = bytearray()
    await stream.send_all(b"220 mx.test ESMTP\r\n")
    seen += await lines(stream, 1, buf)
    await stream.send_all(EHLO)
    seen += await lines(stream, 3, buf)
    for reply in GROUP_REPLIES:          # each after `pause`: the exchange lasts longer than T
        await trio.sleep(pause)
        await stream.send_all(reply)
    seen += await lines(stream, 2, buf)
    await trio.sleep(pause)
    await stream.send_all(b"250 2.0.0 Ok: queued as X\r\n")
    await trio.sleep_forever()


def test_every_read_has_a_deadline_of_its_own():
    result, seen = run(exchange, lambda s, seen: slow_server(s, seen, 0.8 * T))
    assert seen[1:] == [b"MAIL FROM:<a@b.test>", b"RCPT TO:<c@d.test>", b"DATA", b"hi", b"."]
    assert [r.status for r in result.recipients] == ["sent"]


def test_a_read_that_outlasts_its_deadline_fails_with_the_stage():
    result, _ = run(exchange, lambda s, seen: slow_server(s, seen, 1.5 * T))
    assert isinstance(result, SessionError) and result.dsn == "4.4.2"
    assert result.text == "conversation with mx.test[192.0.2.1] timed out while sending MAIL FROM"


@pytest.mark.parametrize("late", [T + 1.0, 3 * T])
def test_a_read_completed_as_its_deadline_passed_still_counts(late):
    # Every read arrives late on the client's side, shielded: its deadline
    # passes while it completes, and the data it brought is not lost.
    result, seen = run(exchange, lambda s, seen: slow_server(s, seen, 0.0), late)
    assert [r.status for r in result.recipients] == ["sent"]


def ready_session() -> SmtpSession:
    cc = ClientConnection("client.test")
    cc.receive_data(b"220 mx.test ESMTP\r\n")
    cc.next_event()
    cc.ehlo()
    cc.receive_data(EHLO)
    cc.next_event()
    client, _server = trio.testing.memory_stream_pair()
    return SmtpSession(client, cc, Target("mx.test", "192.0.2.1"), TIMEOUTS)


def test_the_cache_closes_each_session_at_its_own_time():
    from mailsys.runtime.smtp_client_io import ConnectionCache

    async def main():
        cache = ConnectionCache(time_limit=2.0)
        async with trio.open_nursery() as n:
            n.start_soon(cache.run)
            await trio.sleep(5)                       # a quiet spell: nothing to wake for
            assert cache.put("smtp:a", ready_session())
            await trio.sleep(1)
            assert cache.put("smtp:a", ready_session())
            assert cache.put("smtp:b", ready_session())
            assert len(cache) == 3
            await trio.sleep(1.01)                    # the first one's time is up
            assert len(cache) == 2
            taken = await cache.take("smtp:a")
            assert taken is not None and taken.probe and len(cache) == 1
            await trio.sleep(1)                       # and the last one's
            assert len(cache) == 0 and await cache.take("smtp:b") is None
            n.cancel_scope.cancel()
    run(main)


# -- smtp_per_request_deadline and smtp_min_data_rate --------------------------------

class SlowLink(trio.abc.Stream):
    """Writes take len(data) / rate seconds, as over a slow link."""

    def __init__(self, inner: trio.abc.Stream, rate: float) -> None:
        self.inner, self.rate = inner, rate

    async def receive_some(self, max_bytes=None):
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data):
        await trio.sleep(len(data) / self.rate)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self):
        await self.inner.wait_send_all_might_not_block()

    async def aclose(self):
        await self.inner.aclose()


async def trickling_server(stream, seen, pause: float):
    """A greeting one byte every `pause` seconds, then a quick session."""
    buf = bytearray()
    for byte in b"220 mx.test ESMTP\r\n":
        await stream.send_all(bytes([byte]))
        await trio.sleep(pause)
    seen += await lines(stream, 1, buf)
    await stream.send_all(EHLO)
    seen += await lines(stream, 3, buf)
    await stream.send_all(b"".join(GROUP_REPLIES))
    while not buf.endswith(b"\r\n.\r\n"):
        buf += await stream.receive_some(1 << 20)
    await stream.send_all(b"250 2.0.0 Ok: queued as X\r\n")
    await trio.sleep_forever()


async def deadline_exchange(server_script, *, per_request: bool, rate: float = 500.0,
                            link: float = 0.0, content: bytes = b"hi\r\n"):
    client, server = trio.testing.memory_stream_pair()
    session = SmtpSession(SlowLink(client, link) if link else client,
                          ClientConnection("client.test"), Target("mx.test", "192.0.2.1"),
                          TIMEOUTS)
    session.per_request, session.min_data_rate = per_request, rate
    seen: list = []
    out: dict = {}
    async with trio.open_nursery() as n:
        n.start_soon(server_script, server, seen)
        try:
            await session.hello(TlsPolicy())
            out["result"] = await session.send_mail("a@b.test", [Rcpt("c@d.test")], content)
        except SessionError as e:
            out["result"] = e
        n.cancel_scope.cancel()
    return out["result"]


@pytest.mark.parametrize("per_request", [False, True])
def test_per_request_deadline_stops_a_trickled_reply(per_request):
    # 19 bytes, one every T/4: each read is quick, the reply takes 4.75 T.
    result = run(lambda: deadline_exchange(lambda s, seen: trickling_server(s, seen, T / 4),
                                           per_request=per_request))
    if per_request:
        assert isinstance(result, SessionError) and result.text == (
            "conversation with mx.test[192.0.2.1] timed out while receiving the initial "
            "server greeting")
    else:
        assert [r.status for r in result.recipients] == ["sent"]


def test_per_request_deadline_is_per_request():
    # The same slow server, well within the limit for each of its replies.
    result = run(lambda: deadline_exchange(lambda s, seen: slow_server(s, seen, 0.8 * T),
                                           per_request=True))
    assert [r.status for r in result.recipients] == ["sent"]


# 2 MB of content over a link of 40 KB/s: about 50 s, five times T.
BIG = b"x" * 998 + b"\r\n"
CONTENT = BIG * 2000


@pytest.mark.parametrize("rate, sent", [
    (500, True),              # each 256 KB write earns far more than T back (capped at T)
    (200_000, False),         # 1.3 s a write: the deadline runs out
])
def test_min_data_rate_extends_the_content_deadline(rate, sent):
    result = run(lambda: deadline_exchange(lambda s, seen: trickling_server(s, seen, 0),
                                           per_request=True, rate=rate, link=40_000.0,
                                           content=CONTENT))
    if sent:
        assert [r.status for r in result.recipients] == ["sent"]
    else:
        assert isinstance(result, SessionError) and result.text == (
            "conversation with mx.test[192.0.2.1] timed out while sending message body")


def test_without_per_request_deadline_each_content_write_has_its_own():
    result = run(lambda: deadline_exchange(lambda s, seen: trickling_server(s, seen, 0),
                                           per_request=False, rate=200_000, link=40_000.0,
                                           content=CONTENT))
    assert [r.status for r in result.recipients] == ["sent"]


class RecordingStream(LateStream):
    """Keeps every buffer the session writes, as it was handed over."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        super().__init__(inner, 0.0)
        self.writes: list = []

    async def receive_some(self, max_bytes=None):
        return await self.inner.receive_some(max_bytes)

    async def send_all(self, data):
        self.writes.append(data)
        await self.inner.send_all(data)


async def body_server(stream, seen):
    """A quick session that keeps the content it got (dot-stuffed, with its end)."""
    buf = bytearray()
    await stream.send_all(b"220 mx.test ESMTP\r\n")
    await lines(stream, 1, buf)
    await stream.send_all(EHLO)
    await lines(stream, 3, buf)
    await stream.send_all(b"".join(GROUP_REPLIES))
    while not buf.endswith(b"\r\n.\r\n"):
        buf += await stream.receive_some(1 << 20)
    seen.append(bytes(buf))
    await stream.send_all(b"250 2.0.0 Ok: queued as X\r\n")
    await trio.sleep_forever()


@pytest.mark.parametrize("content, wire", [
    (BIG * 600, BIG * 600 + b".\r\n"),
    # A leading dot is stuffed in a piece of its own, the content still not copied.
    (b"." + BIG * 600, b".." + BIG * 600 + b".\r\n"),
])
def test_large_content_is_written_from_the_bytes_given(content, wire):
    seen: list = []

    async def main():
        client, server = trio.testing.memory_stream_pair()
        stream = RecordingStream(client)
        session = SmtpSession(stream, ClientConnection("client.test"),
                              Target("mx.test", "192.0.2.1"), TIMEOUTS)
        async with trio.open_nursery() as n:
            n.start_soon(body_server, server, seen)
            await session.hello(TlsPolicy())
            result = await session.send_mail("a@b.test", [Rcpt("c@d.test")], content)
            n.cancel_scope.cancel()
        return result, stream
    result, stream = run(main)
    assert [r.status for r in result.recipients] == ["sent"]
    assert seen == [wire]
    # 600 KB in writes of at most WRITE_SIZE, each a view of the caller's
    # bytes, then the end of data; no copy of the content was made.
    views = [w for w in stream.writes if isinstance(w, memoryview)]
    assert len(views) == 3 and all(w.obj is content for w in views)
    assert sum(map(len, views)) == len(content) and stream.writes[-1] == b".\r\n"
