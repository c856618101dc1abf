"""Helpers for the in-process smtpd tests: sessions on memory streams, cleanup and anvil
on real Unix sockets under the test's queue directory."""

from __future__ import annotations

import functools
import socket

import trio
import trio.testing
from structlog.testing import capture_logs

from mailsys.ipc import names
from mailsys.ipc.proto.cleanup import CleanupRequest, Queued
from mailsys.policy.anvil import Anvil
from mailsys.runtime import ipc_io
from mailsys.runtime.smtpd_server import SmtpdServer
from mailsys.runtime.smtpd_session import Session
from services.anvil import AnvilChannel

PARAMS = {"mydestination": "$myhostname, example.test", "local_recipient_maps": "",
          "smtpd_error_sleep_time": "0", "smtpd_peername_lookup": "no"}


def trio_test(fn=None, *, clock=None):
    if fn is None:
        return functools.partial(trio_test, clock=clock)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return trio.run(functools.partial(fn, *args, **kwargs),
                        clock=clock() if clock else None)
    return wrapper


class FakeCleanup:
    """A cleanup server that records requests and answers with `answer(request)`."""

    def __init__(self, answer=None) -> None:
        self.requests: list[CleanupRequest] = []
        self.answer = answer or (lambda req: Queued(req.queue_id, len(req.content)))

    async def handle(self, req: object) -> object:
        self.requests.append(req)
        return self.answer(req)


async def serve_unix(nursery: trio.Nursery, path, handler, protocol: str) -> None:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen()

    async def one(stream):
        await ipc_io.serve(stream, handler, protocol=protocol)
    nursery.start_soon(trio.serve_listeners, one, [trio.SocketListener(sock)])


class Client:
    """The client end of a memory stream: send bytes, read whole replies."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.buf = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def reply(self) -> str:
        """One complete reply, continuation lines included ("" at end of stream)."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = await self.stream.receive_some(65536)
                if not data:
                    return "\n".join(lines)
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode())
            if line[3:4] == b" ":
                return "\n".join(lines)

    async def replies(self, n: int) -> list[str]:
        return [await self.reply() for _ in range(n)]


def start_session(nursery, session: Session) -> Client:
    """Run session on a memory stream that it closes at the end, as the skeleton does."""
    client_end, server_end = trio.testing.memory_stream_pair()
    client = Client(client_end)
    client.done = trio.Event()

    async def run():
        try:
            await session.run(server_end)
        finally:
            with trio.CancelScope(shield=True):
                await server_end.aclose()
                await session.server.aclose()
            client.done.set()
    nursery.start_soon(run)
    return client


async def open_session(nursery, cfg, *, addr="192.0.2.7", name="client.example", cleanup=None,
                       anvil=False, peer=None) -> tuple[Client, Session]:
    queue_dir = cfg.path("queue_directory")
    if cleanup is not None:
        await serve_unix(nursery, names.private_path(queue_dir, names.CLEANUP), cleanup.handle,
                         "cleanup")
    if anvil:
        counters = Anvil(60)
        await serve_unix(nursery, names.private_path(queue_dir, names.ANVIL),
                         lambda msg: AnvilChannel(counters).handle(msg), "anvil")
    server = SmtpdServer.from_config(cfg, "smtp")
    session = Session(server, name, addr, 4711, peer)
    client = start_session(nursery, session)
    assert (await client.reply()).startswith("220 mx.example.test ESMTP")
    return client, session


async def converse(cfg, data: bytes, n: int, **kw) -> tuple[list[str], list[dict]]:
    """Open a session, send data at once, read n replies; the replies and the log events."""
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            client, _ = await open_session(nursery, cfg, **kw)
            await client.send(data)
            got = await client.replies(n)
            nursery.cancel_scope.cancel()
    return got, logs
