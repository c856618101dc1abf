"""TlsStream over trio memory streams and over real loopback sockets."""

from __future__ import annotations

import os
from functools import partial

import pytest
import trio
import trio.testing

from mailsys.runtime.tls_stream import TlsStream
from mailsys.tls import TlsEngine, TlsError, client_context, describe, peer_status, server_context


def run(fn, *args, clock=None):
    return trio.run(partial(fn, *args), clock=clock)


def streams(cfg, level="may", hostname="mx.example.test", transport=None):
    """(client TlsStream, server TlsStream) over a memory stream pair."""
    left, right = transport or trio.testing.memory_stream_pair()
    server = TlsStream(right, TlsEngine(server_context(cfg), server_side=True))
    client = TlsStream(left, TlsEngine(client_context(cfg, level), server_side=False,
                                       server_hostname=hostname))
    return client, server


async def handshake_both(client: TlsStream, server: TlsStream, timeout: float = 5) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handshake, timeout)
        await client.handshake(timeout)


async def receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = await stream.receive_some()
        assert chunk, f"EOF after {len(got)} of {size} bytes"
        got += chunk
    return bytes(got)


async def receive_all(stream: trio.abc.ReceiveStream) -> bytes:
    got = bytearray()
    while chunk := await stream.receive_some():
        got += chunk
    return bytes(got)


def test_handshake_and_echo(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        await client.send_all(b"EHLO c.example.test\r\n")
        assert await receive_exactly(server, 21) == b"EHLO c.example.test\r\n"
        await server.send_all(b"250 mx.example.test\r\n")
        assert await client.receive_some(3) == b"250"              # max_bytes honoured
        assert await client.receive_some() == b" mx.example.test\r\n"
        assert describe(server.engine).protocol == describe(client.engine).protocol == "TLSv1.3"
        await client.aclose()
        assert await server.receive_some() == b""                 # close_notify is EOF
        await server.aclose()
    run(main)


def test_large_payloads_both_ways_at_once(tls_cfg):
    # One reader and one writer per side, concurrently: the lock keeps the
    # reader's protocol bytes and the writer's records in order.
    up, down = os.urandom(4 * 1024 * 1024 + 3), os.urandom(3 * 1024 * 1024 + 11)

    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        results = {}

        async def collect(name, stream, size):
            results[name] = await receive_exactly(stream, size)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, up)
            nursery.start_soon(server.send_all, down)
            nursery.start_soon(collect, "server", server, len(up))
            nursery.start_soon(collect, "client", client, len(down))
        assert results["server"] == up
        assert results["client"] == down
    run(main)


def test_send_eof_half_closes(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        await client.send_all(b"QUIT\r\n")
        await client.send_eof()
        await client.send_eof()                                   # idempotent
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"more")
        assert await receive_all(server) == b"QUIT\r\n"
        await server.send_all(b"221 2.0.0 Bye\r\n")               # the other way still works
        assert await client.receive_some() == b"221 2.0.0 Bye\r\n"
        await server.aclose()
        assert await client.receive_some() == b""
        await client.aclose()
    run(main)


def test_aclose_is_idempotent_and_final(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        await client.aclose()
        await client.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"x")
        with pytest.raises(trio.ClosedResourceError):
            await client.receive_some()
        await server.aclose()
    run(main)


def test_aclose_is_bounded_when_the_peer_does_not_read(tls_cfg):
    async def main():
        left, right = trio.testing.lockstep_stream_pair()    # no buffering at all
        client, server = streams(tls_cfg, transport=(left, right))
        async with trio.open_nursery() as nursery:
            async def client_side():
                await client.handshake(5)
                with trio.move_on_after(1):
                    await client.receive_some()       # takes the server's session tickets
            nursery.start_soon(client_side)
            await server.handshake(5)
        start = trio.current_time()
        await client.aclose()                                 # the server never reads
        assert trio.current_time() - start == pytest.approx(client.close_timeout, abs=0.5)
        await server.aclose()
    run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_transport_eof_without_close_notify_is_eof(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        await client.send_all(b"DATA\r\n")
        await client.transport_stream.aclose()                # the peer just hangs up
        assert await receive_all(server) == b"DATA\r\n"
        await server.aclose()
    run(main)


def test_concurrent_receivers_are_refused(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await handshake_both(client, server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await server.receive_some()
            nursery.cancel_scope.cancel()
    run(main)


def test_use_before_handshake_is_a_bug(tls_cfg):
    async def main():
        client, _ = streams(tls_cfg)
        with pytest.raises(RuntimeError):
            await client.send_all(b"x")
    run(main)


def test_handshake_timeout(tls_cfg):
    async def main():
        _, server = streams(tls_cfg)           # the client never says hello
        with pytest.raises(TlsError) as e:
            await server.handshake(30)
        assert e.value.kind == "timeout"
        assert trio.current_time() == pytest.approx(30)
        with pytest.raises(trio.BrokenResourceError):
            await server.receive_some()
        await server.aclose()
    run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_peer_hangs_up_during_handshake(tls_cfg):
    async def main():
        client, server = streams(tls_cfg)
        await client.transport_stream.aclose()
        with pytest.raises(TlsError) as e:
            await server.handshake(5)
        assert e.value.kind == "eof"
        await server.aclose()
    run(main)


def test_verification_failure_over_a_stream(tls_cfg):
    # The handshake completes (the level decides afterwards, as in Postfix);
    # the client's engine says why the certificate failed.
    from mailsys.tls import verify_failure

    async def main():
        client, server = streams(tls_cfg, "secure", "wrong.example.test")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handshake, 5)
            await client.handshake(5)
        assert verify_failure(client.engine, "x").endswith(": num=62:hostname mismatch")
        await client.aclose()
        await server.aclose()
    run(main)


def test_corruption_after_the_handshake_breaks_the_stream(tls_cfg):
    async def main():
        left, right = trio.testing.memory_stream_pair()
        client, server = streams(tls_cfg, transport=(left, right))
        await handshake_both(client, server)
        await left.send_all(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)   # a forged record
        with pytest.raises(trio.BrokenResourceError) as e:
            await server.receive_some()
        assert isinstance(e.value.__cause__, TlsError)
        with pytest.raises(trio.BrokenResourceError):
            await server.send_all(b"x")
        await server.aclose()
    run(main)


# -- real sockets ----------------------------------------------------------------------


async def loopback_pair():
    """(client SocketStream, server SocketStream) connected over 127.0.0.1."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    try:
        client = await trio.testing.open_stream_to_socket_listener(listeners[0])
        server = await listeners[0].accept()
    finally:
        for listener in listeners:
            await listener.aclose()
    return client, server


def test_over_a_loopback_socket(tls_cfg):
    payload = os.urandom(2 * 1024 * 1024)

    async def main():
        client, server = streams(tls_cfg, "secure", "127.0.0.1", transport=await loopback_pair())
        await handshake_both(client, server)
        assert peer_status(client.engine) == "Verified"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_all, payload)
            assert await receive_exactly(server, len(payload)) == payload
        await client.aclose()
        assert await server.receive_some() == b""
        await server.aclose()
    run(main)


def test_starttls_discards_pipelined_plaintext(tls_cfg):
    # The smtpd side as the caller must do it: answer STARTTLS, drop what the
    # client pipelined after it, and build the TlsStream on the raw socket.
    async def main():
        left, right = await loopback_pair()
        engine = TlsEngine(server_context(tls_cfg), server_side=True)
        seen = []

        async def smtpd():
            buffer = bytearray()
            while b"STARTTLS\r\n" not in buffer or not buffer.endswith(b"\r\n\r\n"):
                buffer += await right.receive_some(65536)
            assert buffer.startswith(b"STARTTLS\r\n")     # the injected command came with it
            del buffer[:]                                  # CVE-2011-0411: discarded
            await right.send_all(b"220 2.0.0 Ready to start TLS\r\n")
            tls = TlsStream(right, engine)
            await tls.handshake(5)
            seen.append(await tls.receive_some())
            await tls.aclose()

        async def client():
            await left.send_all(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example.test>\r\n\r\n")
            assert await left.receive_some() == b"220 2.0.0 Ready to start TLS\r\n"
            tls = TlsStream(left, TlsEngine(client_context(tls_cfg, "may"), server_side=False))
            await tls.handshake(5)
            await tls.send_all(b"EHLO c.example.test\r\n")
            assert await tls.receive_some() == b""
            await tls.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(smtpd)
            nursery.start_soon(client)
        assert seen == [b"EHLO c.example.test\r\n"]
    run(main)


# -- trio's own conformance checks for Stream implementations ----------------------------


def conformance_makers(cfg):
    async def make_pair(transport):
        client, server = streams(cfg, transport=transport)
        async with trio.open_nursery() as nursery:
            async def client_side():
                await client.handshake(5)
                # Take the server's TLSv1.3 session tickets, which a clogged
                # transport would otherwise hold up.
                with trio.move_on_after(0.2):
                    await client.receive_some()
            nursery.start_soon(client_side)
            await server.handshake(5)
        return client, server

    async def stream_maker():
        return await make_pair(trio.testing.memory_stream_pair())

    async def clogged_stream_maker():
        return await make_pair(trio.testing.lockstep_stream_pair())

    return stream_maker, clogged_stream_maker


def test_trio_stream_conformance(tls_cfg):
    # The clock jumps over the close timeouts the clogged streams run into.
    run(trio.testing.check_half_closeable_stream, *conformance_makers(tls_cfg),
        clock=trio.testing.MockClock(autojump_threshold=0))


def test_data_behind_the_clients_finished_is_not_lost(tls_cfg):
    async def main():
        left, right = trio.testing.memory_stream_pair()
        server = TlsStream(right, TlsEngine(server_context(tls_cfg), server_side=True))
        client = TlsEngine(client_context(tls_cfg, "may"), server_side=False)

        async def client_side():
            hello, _ = client.handshake_step(b"")
            await left.send_all(hello)
            finished = bytearray()
            done = False
            while not done:
                piece, done = client.handshake_step(await left.receive_some())
                finished += piece
            await left.send_all(bytes(finished) + client.encrypt(b"EHLO c\r\n"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_side)
            await server.handshake(5)
        with trio.fail_after(5):
            assert await server.receive_some() == b"EHLO c\r\n"
        await server.aclose()
    run(main)
