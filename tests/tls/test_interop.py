"""Interoperability with Python's stdlib ssl as the peer (tests only use stdlib ssl).

In-process through trio.SSLStream (stdlib ssl on trio memory streams), and
once with a plain blocking ssl socket in a thread over loopback.
"""

from __future__ import annotations

import os
import socket
import ssl
from functools import partial

import pytest
import trio
import trio.testing

from mailsys.runtime.tls_stream import TlsStream
from mailsys.tls import TlsEngine, TlsError, client_context, describe, peer_status, server_context


def stdlib_client_context(pki, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    for name, value in kw.items():
        setattr(ctx, name, value)
    return ctx


def test_stdlib_client_against_our_server(tls_cfg, pki):
    async def main():
        left, right = trio.testing.memory_stream_pair()
        ours = TlsStream(right, TlsEngine(server_context(tls_cfg), server_side=True))
        theirs = trio.SSLStream(left, stdlib_client_context(pki), server_hostname="mx.example.test")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ours.handshake, 5)
            await theirs.do_handshake()
        assert theirs.version() == describe(ours.engine).protocol == "TLSv1.3"
        assert theirs.cipher()[0] == describe(ours.engine).cipher
        await theirs.send_all(b"EHLO python.example.test\r\n")
        assert await ours.receive_some() == b"EHLO python.example.test\r\n"
        await ours.send_all(b"250 mx.example.test\r\n")
        assert await theirs.receive_some() == b"250 mx.example.test\r\n"
        await ours.aclose()
        assert await theirs.receive_some() == b""
        await theirs.aclose()
    trio.run(main)


def test_stdlib_client_tls12(tls_cfg, pki):
    async def main():
        left, right = trio.testing.memory_stream_pair()
        ours = TlsStream(right, TlsEngine(server_context(tls_cfg), server_side=True))
        ctx = stdlib_client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
        theirs = trio.SSLStream(left, ctx, server_hostname="mx.example.test")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ours.handshake, 5)
            await theirs.do_handshake()
        info = describe(ours.engine)
        assert info.protocol == "TLSv1.2" == theirs.version()
        assert info.cipher == theirs.cipher()[0]
        assert info.usebits == theirs.cipher()[2]
        await theirs.send_all(b"x" * 100_000)
        got = bytearray()
        while len(got) < 100_000:
            got += await ours.receive_some()
        assert got == b"x" * 100_000
        await theirs.aclose()
        await ours.aclose()
    trio.run(main)


def test_stdlib_client_rejects_our_server_for_a_wrong_name(tls_cfg, pki):
    async def main():
        left, right = trio.testing.memory_stream_pair()
        ours = TlsStream(right, TlsEngine(server_context(tls_cfg), server_side=True))
        theirs = trio.SSLStream(left, stdlib_client_context(pki), server_hostname="other.example.test")
        async with trio.open_nursery() as nursery:
            async def our_side():
                with pytest.raises(TlsError) as e:
                    await ours.handshake(5)
                # trio.SSLStream hangs up without sending its alert.
                assert e.value.kind == "eof"
            nursery.start_soon(our_side)
            with pytest.raises(trio.BrokenResourceError) as e:
                await theirs.do_handshake()
            assert isinstance(e.value.__cause__, ssl.SSLCertVerificationError)
            await theirs.transport_stream.aclose()
        await ours.aclose()
    trio.run(main)


def test_our_client_against_a_stdlib_server(make_cfg, pki):
    cfg = make_cfg(smtp_tls_CAfile=pki["ca"])
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(pki["server"]))

    async def main():
        left, right = trio.testing.memory_stream_pair()
        theirs = trio.SSLStream(right, ctx, server_side=True)
        ours = TlsStream(left, TlsEngine(client_context(cfg, "secure"), server_side=False,
                                         server_hostname="mx.example.test"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(theirs.do_handshake)
            await ours.handshake(5)
        assert peer_status(ours.engine) == "Verified"
        await theirs.send_all(b"220 python ESMTP\r\n")
        assert await ours.receive_some() == b"220 python ESMTP\r\n"
        payload = os.urandom(1_000_003)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ours.send_all, payload)
            got = bytearray()
            while len(got) < len(payload):
                got += await theirs.receive_some()
        assert got == payload
        await ours.aclose()
        assert await theirs.receive_some() == b""
        await theirs.aclose()
    trio.run(main)


def test_blocking_stdlib_socket_over_loopback(tls_cfg, pki):
    """A plain ssl.SSLSocket in a worker thread talks to our server over TCP."""
    def blocking_client(port: int) -> bytes:
        ctx = stdlib_client_context(pki)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"HELO python\r\n")
                answer = b""
                while not answer.endswith(b"\r\n"):
                    answer += tls.recv(4096)
                return answer

    async def main():
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            async def serve_one():
                transport = await listeners[0].accept()
                ours = TlsStream(transport, TlsEngine(server_context(tls_cfg), server_side=True))
                await ours.handshake(10)
                line = await ours.receive_some()
                await ours.send_all(b"250 got " + line)
                await ours.aclose()
            nursery.start_soon(serve_one)
            answer = await trio.to_thread.run_sync(blocking_client, port)
        for listener in listeners:
            await listener.aclose()
        assert answer == b"250 got HELO python\r\n"
    trio.run(main)
