"""TlsStream over FastStream: STARTTLS as smtpd and the smtp client run it, on the
streams the skeleton accepts and the smtp client connects."""

from __future__ import annotations

import os
import socket

import trio

from mailsys.runtime.fast_stream import FastListener, FastStream
from mailsys.runtime.tls_stream import TlsStream
from mailsys.tls import TlsEngine, client_context, peer_status, server_context

READY = b"220 2.0.0 Ready to start TLS\r\n"


async def fast_loopback_pair() -> tuple[FastStream, FastStream]:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    async with FastListener(lsock) as listener:
        tsock = trio.socket.socket()
        await tsock.connect(lsock.getsockname())
        client = FastStream.from_trio_socket(tsock)
        server = await listener.accept()
    return client, server


async def receive_exactly(stream, size: int) -> bytes:
    got = bytearray()
    while len(got) < size:
        chunk = await stream.receive_some()
        assert chunk, f"EOF after {len(got)} of {size} bytes"
        got += chunk
    return bytes(got)


def test_starttls_and_bulk_data_over_fast_streams(tls_cfg):
    payload = os.urandom(2 * 1024 * 1024)

    async def main():
        left, right = await fast_loopback_pair()
        got = {}

        async def smtpd():
            assert await receive_exactly(right, 10) == b"STARTTLS\r\n"
            await right.send_all(READY)
            tls = TlsStream(right, TlsEngine(server_context(tls_cfg), server_side=True))
            await tls.handshake(5)
            got["server"] = await receive_exactly(tls, len(payload))
            await tls.send_all(payload[::-1])
            got["eof"] = await tls.receive_some()
            await tls.aclose()

        async def client():
            await left.send_all(b"STARTTLS\r\n")
            assert await receive_exactly(left, len(READY)) == READY
            tls = TlsStream(left, TlsEngine(client_context(tls_cfg, "secure"), server_side=False,
                                            server_hostname="127.0.0.1"))
            await tls.handshake(5)
            got["verified"] = peer_status(tls.engine)
            await tls.send_all(payload)
            got["client"] = await receive_exactly(tls, len(payload))
            await tls.aclose()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(smtpd)
                nursery.start_soon(client)
        assert got == {"server": payload, "client": payload[::-1], "eof": b"",
                       "verified": "Verified"}
        assert left.socket.fileno() == right.socket.fileno() == -1     # closed by TlsStream
    trio.run(main)
