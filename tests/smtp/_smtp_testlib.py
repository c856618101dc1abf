"""A tiny in-memory client for ServerConnection: bytes in, events and replies out.

run() feeds client bytes (all at once, in steps of N bytes, or at given
split points), answers every owed event like a permissive smtpd would
(the canned default, a queue ID for EndOfData, or what ``policy`` returns)
and collects what happened. DataChunks are merged so that runs with
different splits compare equal.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from mailsys.smtp import (
    NEED_DATA, PAUSED, REPLY_OWED, Auth, AuthResponse, ConnectionClosed, DataChunk, EndOfData,
    RemoteProtocolError, Reply, ServerConnection, Settings, StartTls, replies,
)
from mailsys.runtime.smtpd_auth import sasl_reply, sasl_text
from mailsys.sasl.passwords import cram_key, hash_password
from mailsys.sasl.server import Exchange, SaslServer
from mailsys.sasl.users import UserDatabase

HOST = "mx.example.com"
BANNER = f"{HOST} ESMTP Postfix"
QID = "1C0BF20E25F"
REPLY_LINE = re.compile(rb"\d{3}[ -][^\r\n]*\r\n")

Policy = Callable[[ServerConnection, object], "Reply | None"]


def settings(**kw) -> Settings:
    kw.setdefault("hostname", HOST)
    return Settings(**kw)


def connect(**kw) -> tuple[ServerConnection, bytes]:
    conn = ServerConnection(settings(**kw))
    return conn, conn.send(replies.greeting(BANNER))


def default_policy(conn: ServerConnection, event: object) -> Reply:
    if isinstance(event, EndOfData):
        return replies.queued(QID)
    if isinstance(event, (Auth, AuthResponse)):
        return replies.auth_failed()
    return conn.default_reply()


def sasl_policy(users: dict[str, str]) -> Policy:
    """Answer Auth/AuthResponse through mailsys.sasl.server as services/smtpd does;
    every user gets a password hash and a CRAM-MD5 key."""
    directory = Path(tempfile.mkdtemp(prefix="sasl"))
    text = "".join(f"{name}:{hash_password(pw)}:{cram_key(pw)}\n" for name, pw in users.items())
    (directory / "sasl_users").write_text(text)
    server = SaslServer(UserDatabase(directory / "sasl_users"), HOST)
    exchanges: dict[int, Exchange] = {}

    def policy(conn: ServerConnection, event: object) -> Reply | None:
        if isinstance(event, Auth):
            exchange = exchanges[id(conn)] = server.begin(event.mechanism)
            result = exchange.start(sasl_text(event.initial_response))
        elif isinstance(event, AuthResponse):
            result = exchanges[id(conn)].respond(sasl_text(event.data))
        else:
            return None
        return sasl_reply(result)
    return policy


def pieces(data: bytes, step: int | None = None, splits: Iterable[int] = ()) -> list[bytes]:
    if step:
        return [data[i:i + step] for i in range(0, len(data), step)]
    cuts = sorted({c for c in splits if 0 < c < len(data)})
    if not cuts:
        return [data]
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class Result:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.out = b""

    def add(self, item: object) -> None:
        if isinstance(item, DataChunk) and self.events and isinstance(self.events[-1], DataChunk):
            self.events[-1] = DataChunk(self.events[-1].data + item.data)
        else:
            self.events.append(item)

    @property
    def replies(self) -> list[str]:
        return self.out.decode("utf-8").split("\r\n")[:-1]

    @property
    def codes(self) -> list[int]:
        return [int(line[:3]) for line in self.replies if line[3] == " "]

    @property
    def body(self) -> bytes:
        return b"".join(e.data for e in self.events if isinstance(e, DataChunk))

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]


def client_feed(cc, data: bytes, step: int | None = None) -> list:
    """Feed server bytes to a ClientConnection (whole or in steps) and
    collect every event, up to the end of the connection."""
    from mailsys.smtp.client import NEED_DATA, ConnectionLost, ProbeFailed
    events = []
    for piece in pieces(data, step) if data else [b""]:
        cc.receive_data(piece)
        while (event := cc.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, (ConnectionLost, ProbeFailed)):
                return events
    return events


def drain(conn: ServerConnection, res: Result, policy: Policy | None = None) -> None:
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError as err:
            res.add(("error", str(err.reply)))
            res.out += conn.send(err.reply)
            continue
        if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
            if isinstance(event, ConnectionClosed):
                res.add(event)
            return
        res.add(event)
        if isinstance(event, REPLY_OWED):
            reply = (policy(conn, event) if policy else None) or default_policy(conn, event)
            res.out += conn.send(reply)
            if isinstance(event, StartTls) and reply.code == 220:
                conn.start_tls_done()
        if conn.closed:
            return


def run(data: bytes, *, conn: ServerConnection | None = None, step: int | None = None,
        splits: Iterable[int] = (), policy: Policy | None = None, eof: bool = False,
        **kw) -> Result:
    if conn is None:
        conn, _ = connect(**kw)
    res = Result()
    for piece in pieces(data, step, splits):
        if conn.closed:
            break
        conn.receive_data(piece)
        drain(conn, res, policy)
    if eof and not conn.closed:
        conn.receive_data(b"")
        drain(conn, res, policy)
    res.conn = conn  # type: ignore[attr-defined]
    return res


def well_formed(out: bytes) -> bool:
    pos = 0
    while pos < len(out):
        m = REPLY_LINE.match(out, pos)
        if m is None:
            return False
        pos = m.end()
    return True


TRANSACTION = (b"EHLO client.example.org\r\n"
               b"MAIL FROM:<alice@example.com> SIZE=100\r\n"
               b"RCPT TO:<bob@example.com>\r\n"
               b"RCPT TO:<carol@example.com> NOTIFY=SUCCESS,FAILURE\r\n"
               b"DATA\r\n"
               b"Subject: hi\r\n"
               b"\r\n"
               b"..leading dot\r\n"
               b"body\r\n"
               b".\r\n"
               b"QUIT\r\n")
