"""ipc_io over real Unix sockets in tmp_path, driven by trio.run."""

from __future__ import annotations

import functools
import os
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from mailsys.errors import ServiceUnavailable
from mailsys.ipc.codec import FrameDecoder, decode, encode, message
from mailsys.ipc.errors import IpcLost, IpcTimeout, IpcUnavailable, ProtocolError, RemoteError
from mailsys.ipc.frames import encode_frame
from mailsys.ipc.messages import ErrorCode, ErrorReply, Hello, Ok
from mailsys.runtime import ipc_io


@message("test_io_echo")
@dataclass(frozen=True, slots=True)
class Echo:
    text: str
    data: bytes = b""
    delay: float = 0.0
    fail: str = ""          # "error": ErrorReply; "bug": raise; "other": reply Ok;
                            # "vanish": hang up without a reply


@message("test_io_echoed")
@dataclass(frozen=True, slots=True)
class Echoed:
    text: str
    data: bytes
    connection: int


def trio_test(fn):
    """Run an async test function under trio.run (pytest-trio is not a dependency)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs))
    return wrapper


class Server:
    """A test service: binds path, serves Echo, records handler bugs like a skeleton."""

    def __init__(self, path, *, protocol="test", idle_timeout=None):
        self.path = path
        self.protocol = protocol
        self.idle_timeout = idle_timeout
        self.bugs: list[BaseException] = []
        self.connections = 0
        self.open = 0
        self.max_open = 0

    async def handle(self, msg: Echo):
        await trio.sleep(msg.delay)
        if msg.fail == "error":
            return ErrorReply(ErrorCode.QUEUE_FULL, f"no room for {msg.text}")
        if msg.fail == "bug":
            raise RuntimeError("handler bug")
        if msg.fail == "other":
            return Ok()
        return Echoed(msg.text, msg.data, self._current)

    async def connection(self, stream):
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        number = self.connections

        async def handler(msg):
            self._current = number
            if msg.fail == "vanish":
                await stream.aclose()
                return Ok()
            return await self.handle(msg)

        try:
            await ipc_io.serve(stream, handler, protocol=self.protocol,
                               idle_timeout=self.idle_timeout)
        except Exception as e:          # the skeleton's job: log it, keep serving others
            self.bugs.append(e)
        finally:
            self.open -= 1

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED):
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        sock.listen(64)
        await trio.serve_listeners(self.connection, [trio.SocketListener(sock)],
                                   task_status=task_status)


@asynccontextmanager
async def serving(path, **kw):
    """Run a test Server on path for the duration of the block."""
    async with trio.open_nursery() as nursery:
        server = Server(path, **kw)
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()


async def bugs_logged(server):
    """Wait for serve() to re-raise a handler bug: it does so just after answering."""
    with trio.fail_after(2):
        while not server.bugs:
            await trio.sleep(0.01)


def connect(path):
    return ipc_io.connect(path, protocol="test", timeout=5)


@trio_test
async def test_call_and_reply_on_a_kept_open_channel(tmp_path):
    async with serving(tmp_path / "svc") as server:
        async with await connect(tmp_path / "svc") as chan:
            for i in range(3):
                reply = await chan.call(Echo(f"m{i}", b"\x00\r\n"), expect=Echoed, timeout=5)
                assert reply == Echoed(f"m{i}", b"\x00\r\n", 1)
            assert chan.calls == 3
        assert server.connections == 1


@trio_test
async def test_one_shot_call_and_protocol_from_socket_name(tmp_path):
    async with serving(tmp_path / "cleanup", protocol=None):
        reply = await ipc_io.call(tmp_path / "cleanup", Echo("x"), expect=(Ok, Echoed), timeout=5)
        assert reply.text == "x"
        with pytest.raises(ProtocolError, match="protocol 'cleanup', expected 'qmgr'"):
            await ipc_io.connect(tmp_path / "cleanup", protocol="qmgr", timeout=5)


@trio_test
async def test_error_reply_raises_remote_error_and_channel_goes_on(tmp_path):
    async with serving(tmp_path / "svc"):
        async with await connect(tmp_path / "svc") as chan:
            with pytest.raises(RemoteError) as e:
                await chan.call(Echo("a", fail="error"), expect=Echoed, timeout=5)
            assert (e.value.code, e.value.text) == ("queue_full", "no room for a")
            assert chan.usable
            assert (await chan.call(Echo("b"), expect=Echoed, timeout=5)).text == "b"


@trio_test
async def test_unexpected_reply_type_is_protocol_error(tmp_path):
    async with serving(tmp_path / "svc"):
        async with await connect(tmp_path / "svc") as chan:
            with pytest.raises(ProtocolError, match="unexpected reply Ok to Echo"):
                await chan.call(Echo("a", fail="other"), expect=Echoed, timeout=5)


@trio_test
async def test_handler_bug_answers_internal_and_spares_other_connections(tmp_path):
    async with serving(tmp_path / "svc") as server:
        other = await connect(tmp_path / "svc")
        async with await connect(tmp_path / "svc") as chan:
            with pytest.raises(RemoteError) as e:
                await chan.call(Echo("a", fail="bug"), expect=Echoed, timeout=5)
            assert e.value.code == "internal" and "RuntimeError: handler bug" in e.value.text
            with pytest.raises(IpcUnavailable):     # the buggy connection was closed
                await chan.call(Echo("b"), expect=Echoed, timeout=5)
        assert (await other.call(Echo("c"), expect=Echoed, timeout=5)).text == "c"
        await other.aclose()
        await bugs_logged(server)
        assert [str(b) for b in server.bugs] == ["handler bug"]


@trio_test
async def test_timeout_is_quick_and_retires_the_channel(tmp_path):
    async with serving(tmp_path / "svc"):
        chan = await connect(tmp_path / "svc")
        started = trio.current_time()
        with pytest.raises(IpcTimeout):
            await chan.call(Echo("slow", delay=30), expect=Echoed, timeout=0.2)
        assert trio.current_time() - started < 1.0
        assert not chan.usable
        with pytest.raises(IpcUnavailable, match="channel closed"):
            await chan.call(Echo("b"), expect=Echoed, timeout=5)


@trio_test
async def test_silent_server_times_out_on_hello(tmp_path):
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(tmp_path / "mute"))
    sock.listen(1)          # accepts into the backlog, never says Hello
    with pytest.raises(IpcTimeout):
        await ipc_io.connect(tmp_path / "mute", protocol="test", timeout=0.2)
    sock.close()


@trio_test
async def test_missing_or_refusing_socket_is_service_unavailable(tmp_path):
    with pytest.raises(ServiceUnavailable):
        await ipc_io.connect(tmp_path / "nothing", protocol="test", timeout=1)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(tmp_path / "dead"))
    sock.close()            # the file stays, nobody listens: ECONNREFUSED
    with pytest.raises(IpcUnavailable, match="cannot connect"):
        await ipc_io.call(tmp_path / "dead", Echo("x"), protocol="test", expect=Echoed, timeout=1)


@trio_test
async def test_five_megabyte_blob_both_ways(tmp_path):
    blob = bytes(range(256)) * (5 * 1024 * 1024 // 256)
    async with serving(tmp_path / "svc"):
        reply = await ipc_io.call(tmp_path / "svc", Echo("big", blob), protocol="test",
                                  expect=Echoed, timeout=20)
        assert reply.data == blob


@trio_test
async def test_pool_bounds_connections_under_concurrency(tmp_path):
    async with serving(tmp_path / "svc") as server:
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=3)
        results = {}

        async def one(i):
            results[i] = await pool.call(Echo(str(i), b"%d" % i, delay=0.01), expect=Echoed, timeout=10)

        async with trio.open_nursery() as callers:
            for i in range(40):
                callers.start_soon(one, i)
        assert {i: (r.text, r.data) for i, r in results.items()} == \
            {i: (str(i), b"%d" % i) for i in range(40)}
        assert server.connections == 3 and server.max_open == 3
        async with pool.channel() as chan:
            assert (await chan.call(Echo("via channel"), expect=Echoed, timeout=5)).connection <= 3
        await pool.aclose()


@trio_test
async def test_a_service_that_hangs_up_after_the_request_is_lost_not_unreachable(tmp_path):
    # Postfix's qmgr_deliver.c tells an agent it cannot reach ("mail
    # transport unavailable") from one that dies with the request
    # ("unknown mail transport error"): IpcLost is the second.
    async with serving(tmp_path / "svc"):
        async with await connect(tmp_path / "svc") as chan:
            with pytest.raises(IpcLost, match="connection closed by the service"):
                await chan.call(Echo("gone", fail="vanish"), expect=Echoed, timeout=5)
    with pytest.raises(IpcUnavailable) as e:
        await ipc_io.call(tmp_path / "svc", Echo("x"), protocol="test", expect=Echoed, timeout=1)
    assert not isinstance(e.value, IpcLost)


@trio_test
async def test_pool_retries_once_when_a_reused_channel_was_closed(tmp_path):
    async with serving(tmp_path / "svc", idle_timeout=0.05) as server:
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        assert (await pool.call(Echo("a"), expect=Echoed, timeout=5)).connection == 1
        await trio.sleep(0.2)       # the server drops the idle connection
        assert (await pool.call(Echo("b"), expect=Echoed, timeout=5)).connection == 2
        assert server.connections == 2
        await pool.aclose()


@trio_test
async def test_pool_retries_a_dead_channel_found_before_the_request_went(tmp_path):
    async with serving(tmp_path / "svc", idle_timeout=0.05):
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        await pool.call(Echo("a"), expect=Echoed, timeout=5)
        await trio.sleep(0.2)       # the server drops the idle connection
        sent = []
        reply = await pool.call_made(lambda: Echo("b"), expect=Echoed, timeout=5,
                                     sent=lambda: sent.append(1))
        assert reply.connection == 2 and sent == [1]
        await pool.aclose()


@trio_test
async def test_a_request_sent_whole_is_not_made_again(tmp_path):
    async with serving(tmp_path / "svc") as server:
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        await pool.call(Echo("a"), expect=Echoed, timeout=5)      # the channel is reused next
        made, sent = [], []

        def make():
            made.append(1)
            return Echo("gone", fail="vanish")
        with pytest.raises(IpcUnavailable, match="connection closed"):
            await pool.call_made(make, expect=Echoed, timeout=5,
                                 sent=lambda: sent.append(len(made)))
        # The caller was told it could let go, so no second try.
        assert made == [1] and sent == [1] and server.connections == 1
        # Without sent, the same failure on a reused channel is tried again.
        await pool.call(Echo("c"), expect=Echoed, timeout=5)
        with pytest.raises(IpcUnavailable):
            await pool.call_made(make, expect=Echoed, timeout=5)
        assert made == [1, 1, 1] and server.connections == 3
        await pool.aclose()


@trio_test
async def test_pool_waits_for_a_slot_only_until_the_deadline(tmp_path):
    async with serving(tmp_path / "svc"):
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        async with pool.channel():
            with pytest.raises(IpcTimeout, match="no free channel"):
                await pool.call(Echo("waits"), expect=Echoed, timeout=0.05)
        # The slot came back: the next call gets it.
        assert (await pool.call(Echo("after"), expect=Echoed, timeout=5)).text == "after"
        await pool.aclose()


@trio_test
async def test_pool_builds_a_made_request_only_when_a_channel_is_free(tmp_path):
    async with serving(tmp_path / "svc"):
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        made = []

        def make():
            made.append(trio.current_time())
            return Echo("made", b"x" * 100_000)

        assert not pool.busy
        async with trio.open_nursery() as nursery:
            async with pool.channel():
                assert pool.busy
                nursery.start_soon(functools.partial(pool.call_made, make, expect=Echoed, timeout=5))
                await trio.sleep(0.05)
                assert made == []       # waiting for the channel, nothing built yet
        assert len(made) == 1 and not pool.busy
        await pool.aclose()


@trio_test
async def test_a_sent_made_request_is_not_held_while_the_reply_is_awaited(tmp_path):
    import gc
    import weakref

    class Blob(bytearray):
        pass                    # bytes cannot be weakly referenced; a subclass of bytearray can

    alive = []

    def make():
        blob = Blob(b"y" * 100_000)
        alive.append(weakref.ref(blob))
        return Echo("slow", blob, delay=0.2)

    async with serving(tmp_path / "svc"):
        pool = ipc_io.ChannelPool(tmp_path / "svc", "test", size=1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(pool.call_made, make, expect=Echoed, timeout=5))
            await trio.sleep(0.1)           # sent, the reply not yet there
            gc.collect()
            assert pool.busy and alive[0]() is None
        await pool.aclose()


@trio_test
async def test_pool_gives_back_the_slot_of_a_failed_connect(tmp_path):
    pool = ipc_io.ChannelPool(tmp_path / "nobody", "test", size=1)
    for _ in range(2):      # a leaked slot would make the second one time out
        with pytest.raises(IpcUnavailable, match="cannot connect"):
            await pool.call(Echo("x"), expect=Echoed, timeout=1)
    await pool.aclose()
    with pytest.raises(IpcUnavailable, match="pool closed"):
        await pool.call(Echo("x"), expect=Echoed, timeout=1)


@trio_test
async def test_malformed_requests_get_protocol_error_replies(tmp_path):
    async with serving(tmp_path / "svc"):
        stream = await trio.open_unix_socket(str(tmp_path / "svc"))
        decoder = FrameDecoder()

        async def receive():
            frames = []
            while not frames:
                data = await stream.receive_some(65536)
                assert data, "server hung up"
                frames = decoder.feed(data)
            return decode(frames[0])

        assert await receive() == Hello("test")
        # A sound frame with an unknown message: answered, connection goes on.
        await stream.send_all(encode_frame(b'{"n":"no_such","v":1,"f":{}}'))
        assert await receive() == ErrorReply("protocol", "unknown message 'no_such'")
        await stream.send_all(encode(Echo("still here")))
        assert (await receive()).text == "still here"
        # A frame over the limit: answered, then the connection is closed.
        await stream.send_all(b"\xff\xff\xff\xff\x00\x00\x00\x00")
        reply = await receive()
        assert reply.code == "protocol" and "frame too large" in reply.text
        assert await stream.receive_some(10) == b""
        await stream.aclose()


@trio_test
async def test_triggers(tmp_path):
    assert await ipc_io.send_trigger(tmp_path / "absent", b"W", timeout=1) is False
    got = []
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(tmp_path / "qmgr"))
    sock.listen(8)
    listener = trio.SocketListener(sock)

    async def trigger_server():
        for _ in range(2):
            stream = await listener.accept()
            data = b""
            with trio.fail_after(1):
                while chunk := await stream.receive_some(1024):     # to end of file
                    data += chunk
            got.append(data)
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trigger_server)
        assert await ipc_io.send_trigger(tmp_path / "qmgr", b"I", timeout=1) is True
        assert await ipc_io.send_trigger(tmp_path / "qmgr", b"DA", timeout=1) is True
    assert got == [b"I", b"DA"]
    await listener.aclose()


@trio_test
async def test_trigger_line_keeps_its_connection_and_replaces_a_closed_one(tmp_path):
    line = ipc_io.TriggerLine(tmp_path / "qmgr")
    assert await line.send(b"I", timeout=1) is False          # nobody listens yet
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(tmp_path / "qmgr"))
    sock.listen(8)
    listener = trio.SocketListener(sock)
    async with listener:
        assert await line.send(b"I", timeout=1) is True
        first = await listener.accept()
        assert await line.send(b"D", timeout=1) is True         # the same connection
        got = b""
        while len(got) < 2:
            got += await first.receive_some(10)
        assert got == b"ID"
        await first.aclose()                                     # as the server does when idle
        await trio.sleep(0.05)
        assert await line.send(b"F", timeout=1) is True         # goes again, on a new one
        with trio.fail_after(2):
            second = await listener.accept()
            assert await second.receive_some(10) == b"F"
        await second.aclose()
    line.close()


@trio_test
async def test_memory_stream_channel_for_in_process_tests():
    client, server = trio.testing.memory_stream_pair()

    async def handler(msg):
        return Echoed(msg.text, msg.data, 0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(ipc_io.serve, server, handler, protocol="mem"))
        chan = await ipc_io.open_channel(client, protocol="mem", timeout=5)
        assert (await chan.call(Echo("m"), expect=Echoed, timeout=5)).text == "m"
        await chan.aclose()


def test_serve_needs_a_protocol_on_an_unnamed_stream():
    client, server = trio.testing.memory_stream_pair()

    async def main():
        await ipc_io.serve(server, None)

    with pytest.raises(TypeError, match="protocol= is required"):
        trio.run(main)



@trio_test
async def test_bad_request_fails_locally_and_outer_cancel_retires_the_channel(tmp_path):
    async with serving(tmp_path / "svc"):
        async with await connect(tmp_path / "svc") as chan:
            with pytest.raises(TypeError, match="expected str"):
                await chan.call(Echo(42), expect=Echoed, timeout=5)
            assert chan.usable
            assert (await chan.call(Echo("ok"), expect=Echoed, timeout=5)).text == "ok"
            with trio.move_on_after(0.1):       # the caller gives up, not the channel
                await chan.call(Echo("slow", delay=30), expect=Echoed, timeout=60)
            assert not chan.usable


@trio_test
async def test_handler_returning_nothing_is_a_bug(tmp_path):
    async def handler(msg):
        return None

    async with serving(tmp_path / "svc") as server:
        server.handle = handler
        with pytest.raises(RemoteError, match="internal: TypeError: handler returned None for Echo"):
            await ipc_io.call(tmp_path / "svc", Echo("x"), protocol="test", expect=Echoed, timeout=5)
        await bugs_logged(server)
    assert [type(b) for b in server.bugs] == [TypeError]


@trio_test
async def test_descriptors_go_with_a_request_to_a_server_that_takes_them(tmp_path):
    # As smtpd hands its milter connections to cleanup: the descriptors
    # ride with the request (SCM_RIGHTS), the handler gets its own copies
    # with that request only, and the sender keeps its own.
    from mailsys.runtime.fast_stream import FastListener
    path = tmp_path / "fds"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(path))
    listening.listen(8)
    listener = FastListener(listening)
    got: list[list[bytes]] = []

    async def handler(msg: Echo, fds: list[int]):
        texts = []
        for fd in fds:
            with open(fd, "rb", closefd=True) as f:
                texts.append(f.read())
        fds.clear()
        got.append(texts)
        return Echoed(msg.text, b"", len(texts))

    pipes = [os.pipe() for _ in range(2)]
    for i, (r, w) in enumerate(pipes):
        os.write(w, f"pipe {i}".encode())
        os.close(w)
    async with trio.open_nursery() as nursery:
        async def serve_one():
            stream = await listener.accept()
            await ipc_io.serve(stream, handler, protocol="test", pass_fds=True)
        nursery.start_soon(serve_one)
        pool = ipc_io.ChannelPool(path, "test", size=1)
        reply = await pool.call_made(lambda: Echo("with", b"x" * 300_000), expect=Echoed,
                                     timeout=5, fds=[r for r, _ in pipes])
        assert reply.connection == 2
        reply = await pool.call(Echo("without"), expect=Echoed, timeout=5)
        assert reply.connection == 0
        await pool.aclose()
    await listener.aclose()
    assert got == [[b"pipe 0", b"pipe 1"], []]
    for r, _ in pipes:
        os.fstat(r)                 # still open here
        os.close(r)
