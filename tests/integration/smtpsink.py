"""smtpsink - a tiny scriptable SMTP server on loopback, in trio, for agent tests.

    sink = SmtpSink(pipelining=False, rcpt={"bad@x.test": "550 5.1.1 <bad@x.test>: User unknown"})
    async with trio.open_nursery() as n:
        port = await n.start(sink.serve)
        ...
    port2 = await n.start(other.serve, "127.0.0.2", port)   # another loopback address, same port
    sink.messages   -> [Message(sender, rcpts, data)]
    sink.sessions   -> connections accepted
    sink.peers      -> the client address of each connection
    sink.commands   -> every command line received, in order
    sink.cut        -> content bytes received by each DATA phase cut short
    sink.behind_rset -> for each RSET, the commands that had already arrived
                        behind it when it was read (a pipelined group)

Replies are scripted: greeting, ehlo (HELO works too), mail, rcpt per
address (default 250), data (354), dot (250 ... queued as N), rset (250; a
421 closes the connection after the reply); ``stall`` names the point where
the server stops answering ("greeting", "EHLO", "MAIL", "RCPT", "DATA",
"DOT", "RSET") and ``drop`` the point where it closes the connection.
``close_after_message`` hangs up after each message (an idle timeout).
``drop_body`` scripts hang-ups inside the content: each entry, used by one
DATA phase in turn, is the number of content bytes the sink takes before it
closes the connection without a reply (``drop_body=[50_000]``: the first
message dies 50 KB in, later ones go through). The sink stops reading at
that byte, so the close finds unread data and the kernel resets the
connection, as when a peer crashes; a client still writing sees its write
fail.
``tls`` is an SSL.Context (pyOpenSSL) that makes it offer STARTTLS;
``starttls`` is the reply to STARTTLS (anything but 2xx refuses it).
``xforward`` ("NAME ADDR ...") makes it offer XFORWARD with those
attributes; each XFORWARD gets ``xforward_reply``.
``tls_ehlo_extra`` is sent right after the EHLO reply inside TLS: replies
to commands the client never sent (CVE-2009-3555's injected ones).
``lmtp=True`` makes it an LMTP server (RFC 2033): LHLO instead of EHLO,
and after the final dot one reply per accepted recipient, ``rcpt_dot``
per address (default ``250 2.0.0 <addr> Saved``; ``DROP`` hangs up there).

Synchronous tests run a sink in a thread of its own:

    with SinkThread(sink) as port: ...           # a free port
    with SinkThread(sink, port=p): ...           # a chosen one
    thread.stop()                                # hang up early
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import trio


@dataclass
class Message:
    sender: str
    rcpts: list[str]
    data: bytes


@dataclass
class SmtpSink:
    greeting: str = "220 sink.test ESMTP"
    pipelining: bool = True
    size: int | None = None
    mail: str = "250 2.1.0 Ok"
    rcpt: dict[str, str] = field(default_factory=dict)
    data: str = "354 End data with <CR><LF>.<CR><LF>"
    dot: str = ""
    rset: str = "250 2.0.0 Ok"
    stall: str = ""
    drop: str = ""
    ehlo_refused: bool = False
    close_after_message: bool = False
    drop_body: list[int] = field(default_factory=list)
    tls: object = None
    starttls: str = "220 2.0.0 Ready to start TLS"
    xforward: str = ""
    xforward_reply: str = "250 2.0.0 Ok"
    tls_ehlo_extra: str = ""
    tls_name: str = ""                 # the name in EHLO replies inside TLS ("": sink.test)
    dsn: bool = False                  # offer DSN (RCPT gets NOTIFY=/ORCPT=)
    lmtp: bool = False
    rcpt_dot: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    sessions: int = 0
    commands: list[str] = field(default_factory=list)
    tls_sessions: int = 0
    peers: list[str] = field(default_factory=list)
    cut: list[int] = field(default_factory=list)
    behind_rset: list[list[str]] = field(default_factory=list)

    async def serve(self, host: str = "127.0.0.1", port: int = 0,
                    task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._session, listeners)

    async def _session(self, stream) -> None:
        self.sessions += 1
        self.peers.append(stream.socket.getpeername()[0])
        conn = _Conn(stream)
        try:
            await self._converse(conn)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Closed):
            pass
        finally:
            with trio.move_on_after(1, shield=True):
                await conn.stream.aclose()

    async def _point(self, name: str) -> None:
        if self.stall == name:
            await trio.sleep_forever()
        if self.drop == name:
            raise _Closed

    async def _converse(self, conn: _Conn) -> None:
        await self._point("greeting")
        await conn.reply(self.greeting)
        if not self.greeting.startswith("2"):
            return
        sender, rcpts = None, []
        while True:
            line = await conn.line()
            self.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO") or verb == "LHLO" and self.lmtp:
                await self._point("EHLO")
                if verb == "EHLO" and self.ehlo_refused:
                    await conn.reply("502 5.5.2 Error: command not recognized")
                    continue
                lines = [conn.tls and self.tls_name or "sink.test"]
                if verb in ("EHLO", "LHLO"):
                    if self.pipelining:
                        lines.append("PIPELINING")
                    if self.size is not None:
                        lines.append(f"SIZE {self.size}")
                    if self.tls is not None and not conn.tls:
                        lines.append("STARTTLS")
                    if self.xforward:
                        lines.append("XFORWARD " + self.xforward)
                    if self.dsn:
                        lines.append("DSN")
                    lines += ["ENHANCEDSTATUSCODES", "8BITMIME"]
                await conn.reply("\r\n".join(
                    f"250{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines))
                    + (f"\r\n{self.tls_ehlo_extra}" if conn.tls and self.tls_ehlo_extra else ""))
            elif verb == "STARTTLS":
                await conn.reply(self.starttls)
                if not self.starttls.startswith("2"):
                    continue
                await conn.start_tls(self.tls)
                self.tls_sessions += 1
            elif verb == "MAIL":
                await self._point("MAIL")
                sender = line[10:].split(">")[0].lstrip("<") if self.mail.startswith("2") else None
                rcpts = []
                await conn.reply(self.mail)
            elif verb == "RCPT":
                await self._point("RCPT")
                addr = line[8:].split(">")[0].lstrip("<")
                if sender is None:
                    await conn.reply("503 5.5.1 Error: need MAIL command")
                    continue
                reply = self.rcpt.get(addr, "250 2.1.5 Ok")
                if reply.startswith("2"):
                    rcpts.append(addr)
                await conn.reply(reply)
            elif verb == "DATA":
                await self._point("DATA")
                if not rcpts:
                    await conn.reply("554 5.5.1 Error: no valid recipients")
                    continue
                await conn.reply(self.data)
                if not self.data.startswith("3"):
                    continue
                limit = self.drop_body.pop(0) if self.drop_body else None
                try:
                    body = await conn.body(limit)
                except _Cut as e:
                    self.cut.append(e.received)
                    raise
                await self._point("DOT")
                self.messages.append(Message(sender or "", rcpts, body))
                if self.lmtp:
                    for r in rcpts:
                        reply = self.rcpt_dot.get(r, f"250 2.0.0 <{r}> Saved")
                        if reply == "DROP":
                            raise _Closed
                        await conn.reply(reply)
                else:
                    await conn.reply(self.dot or f"250 2.0.0 Ok: queued as Q{len(self.messages)}")
                sender, rcpts = None, []
                if self.close_after_message:
                    return
            elif verb == "RSET":
                self.behind_rset.append(conn.complete_lines())
                await self._point("RSET")
                sender, rcpts = None, []
                await conn.reply(self.rset)
                if self.rset.startswith("421"):
                    return
            elif verb == "XFORWARD" and self.xforward:
                await conn.reply(self.xforward_reply)
            elif verb == "QUIT":
                await conn.reply("221 2.0.0 Bye")
                return
            else:
                await conn.reply("502 5.5.2 Error: command not recognized")


class _Closed(Exception):
    pass


class _Cut(_Closed):
    """The sink hung up inside the content, after ``received`` bytes of it."""

    def __init__(self, received: int) -> None:
        super().__init__(received)
        self.received = received


class _Conn:
    def __init__(self, stream) -> None:
        self.stream = stream
        self.buf = b""
        self.tls = False

    async def _fill(self, most: int = 65536) -> None:
        data = await self.stream.receive_some(most)
        if not data:
            raise _Closed
        self.buf += data

    async def line(self) -> str:
        while b"\r\n" not in self.buf:
            await self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def complete_lines(self) -> list[str]:
        """The command lines already received and not yet read."""
        return [ln.decode("utf-8", "replace") for ln in self.buf.split(b"\r\n")[:-1]]

    async def body(self, limit: int | None = None) -> bytes:
        """The content up to the lone dot, unstuffed; _Cut once ``limit`` bytes came without it."""
        scan = 0          # where the end marker may start: the rest was searched
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 0
            else:
                end = self.buf.find(b"\r\n.\r\n", scan)
                end = end + 2 if end >= 0 else -1
            if end >= 0:
                raw, self.buf = self.buf[:end], self.buf[end + 3:]
                lines = raw.split(b"\r\n")
                return b"\r\n".join(ln[1:] if ln.startswith(b".") else ln for ln in lines)
            scan = max(0, len(self.buf) - 4)
            if limit is not None and len(self.buf) >= limit:
                raise _Cut(len(self.buf))
            # Never read past the limit: the rest stays unread in the kernel.
            await self._fill(65536 if limit is None else min(65536, limit - len(self.buf)))

    async def reply(self, text: str) -> None:
        await self.stream.send_all(text.encode() + b"\r\n")

    async def start_tls(self, ctx) -> None:
        from mailsys.runtime.tls_stream import TlsStream
        from mailsys.tls import TlsEngine, TlsError
        self.buf = b""
        self.stream = TlsStream(self.stream, TlsEngine(ctx, server_side=True))
        try:
            await self.stream.handshake(5)
        except TlsError:
            raise _Closed from None
        self.tls = True


class SinkThread:
    """An SmtpSink served by trio in a thread of its own, for sync tests."""

    def __init__(self, sink: SmtpSink, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sink = sink
        self._where = (host, port)
        self._ports: queue.Queue = queue.Queue()
        self._token = None
        self._thread = threading.Thread(target=lambda: trio.run(self._main), daemon=True)

    async def _main(self) -> None:
        async with trio.open_nursery() as n:
            self._token = (trio.lowlevel.current_trio_token(), n.cancel_scope)
            self._ports.put(await n.start(self.sink.serve, *self._where))

    def __enter__(self) -> int:
        self._thread.start()
        return self._ports.get(timeout=5)

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the listener and every session now (again: nothing)."""
        if self._thread.is_alive():
            token, scope = self._token
            token.run_sync_soon(scope.cancel)
            self._thread.join(5)
