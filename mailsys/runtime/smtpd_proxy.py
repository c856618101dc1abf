"""smtpd_proxy - smtpd's SMTP client of a before-queue content filter.

SYNOPSIS
    proxy = ProxyFilter.from_config(cfg)          # None when smtpd_proxy_filter is empty
    txn = proxy.transaction(mail_raw, xforward_attrs)
    reply = await txn.open()                      # at the first accepted RCPT
    reply = await txn.rcpt(rcpt_raw)              # None: the filter took it
    reply = await txn.data(header)                # DATA, then our headers
    await txn.content(piece)                      # message content, as it arrives
    result = await txn.finish(spooled)            # "." and the filter's answer
    txn.close()                                   # QUIT, without waiting

DESCRIPTION
    Postfix's smtpd_proxy.c: with smtpd_proxy_filter set, smtpd gives the
    message to an SMTP filter (which re-injects it into another smtpd)
    instead of to cleanup. One FilterTransaction per mail transaction, made
    when smtpd accepts the first recipient (smtpd_delay_open_until_valid_rcpt
    at its default): it connects to the filter (inet host:port or a unix
    socket), reads the greeting, sends EHLO smtpd_proxy_ehlo, XFORWARD with
    the client's attributes when the filter offers XFORWARD, and the
    client's MAIL command as the client sent it; then each RCPT and DATA as
    the client sent them, the Received: header and the content dot-stuffed
    (mailsys.smtp.proxy_filter), ".", and QUIT when the transaction ends.

    With smtpd_proxy_options = speed_adjust nothing goes to the filter
    before the whole message is in: RCPT and DATA are remembered and
    answered by smtpd itself, the content is spooled by the session, and
    finish() replays the conversation; the first reply that is not the
    expected one is the answer to the end of the message (Postfix's
    smtpd_proxy_replay_send()).

    Every connect, read and write has smtpd_proxy_timeout. What goes wrong
    is logged as Postfix 3.7.11 logs it (live) and answered with its
    generic "451 4.3.0 Error: queue file write error":

      warning: connect to proxy filter SERVICE: Connection refused
      warning: timeout talking to proxy SERVICE
      warning: lost connection with proxy SERVICE
      warning: proxy SERVICE rejected "RCPT TO:<x@y>": "550 5.1.1 ..."

    A 4xx or 5xx reply to MAIL, RCPT or DATA is passed to the client as
    it is (with the warning); an unexpected 2xx or 3xx becomes the
    generic reply, as in Postfix 2.6 and later. After a failure the
    connection is useless: later calls answer the generic reply without
    new warnings, and content is dropped (the client still sends it all).

    last_text is the filter's last reply as Postfix keeps it (or the
    generic reply after a failure): what the "proxy-reject:" line of a
    message too big quotes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, BinaryIO

import structlog
import trio

from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.smtp import RemoteProtocolError, Reply, replies
from mailsys.smtp._client_reply import ReplyReader, Response
from mailsys.smtp.proxy_filter import (DotStuffer, Endpoint, parse_endpoint, rejected_warning,
                                       xforward_commands)

log = structlog.get_logger()

# smtpd_proxy.c smtpd_proxy_fake_server_reply(): cleanup_stat_detail(CLEANUP_STAT_PROXY).
PROXY_ERROR = replies.QUEUE_WRITE_ERROR
SPEED_ADJUST = "speed_adjust"
READ_SIZE = 4096
# Spooled content (speed_adjust) goes to the filter in pieces this big.
REPLAY_PIECE = 65536

# Expected reply classes (smtpd_proxy.h SMTPD_PROX_WANT_*); "" expects nothing.
WANT_OK, WANT_MORE, WANT_ANY = "2", "3", ""


@frozen
class ProxyFilter:
    """smtpd_proxy_* as one smtpd process reads them once."""
    service: str            # smtpd_proxy_filter as written: the log lines name it so
    endpoint: Endpoint
    ehlo_name: str
    timeout: float
    speed_adjust: bool
    line_limit: int

    @classmethod
    def from_config(cls, cfg: Any) -> "ProxyFilter | None":
        spec = str(cfg.smtpd_proxy_filter).strip()
        if not spec:
            return None
        try:
            endpoint = parse_endpoint(spec)
        except ValueError as e:
            raise ConfigError(f"bad smtpd_proxy_filter value: {e}",
                              param="smtpd_proxy_filter") from None
        return cls(service=spec, endpoint=endpoint, ehlo_name=cfg.smtpd_proxy_ehlo,
                   timeout=float(cfg.smtpd_proxy_timeout),
                   speed_adjust=SPEED_ADJUST in (o.lower() for o in cfg.smtpd_proxy_options),
                   line_limit=int(cfg.line_length_limit))

    def transaction(self, mail_raw: str, xforward: Mapping[str, str | None]) -> "FilterTransaction":
        return FilterTransaction(self, mail_raw, xforward)


class _Trouble(Exception):
    """The filter exchange failed; reply is what the client gets."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


async def _connect(endpoint: Endpoint) -> trio.SocketStream:
    if endpoint.kind == "unix":
        return await trio.open_unix_socket(endpoint.path)
    port = int(endpoint.port) if endpoint.port.isdigit() \
        else socket.getservbyname(endpoint.port, "tcp")
    infos = await trio.socket.getaddrinfo(endpoint.host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError("no address")
    # Each address in turn, as Postfix's inet_connect() does.
    for family, kind, proto, _, address in infos:
        sock = trio.socket.socket(family, kind, proto)
        try:
            await sock.connect(address)
        except OSError as e:
            sock.close()
            error = e
            continue
        return trio.SocketStream(sock)
    raise error


class _Connection:
    """One connection to the filter: commands and replies, each under the timeout."""

    def __init__(self, proxy: ProxyFilter) -> None:
        self.proxy = proxy
        self.stream: trio.SocketStream | None = None
        self.reader = ReplyReader(proxy.line_limit)
        self.broken = False
        self.last_text = ""

    def _fail(self, warning: str | None) -> _Trouble:
        if warning is not None:
            log.warning(warning)
        self.broken = True
        self.last_text = str(PROXY_ERROR)
        return _Trouble(PROXY_ERROR)

    async def connect(self) -> None:
        proxy = self.proxy
        with trio.move_on_after(proxy.timeout):
            try:
                self.stream = await _connect(proxy.endpoint)
            except OSError as e:
                # %m: trio words its own message around the errno's.
                reason = os.strerror(e.errno) if e.errno else str(e)
                raise self._fail(f"connect to proxy filter {proxy.service}: {reason}") from None
            return
        raise self._fail(f"connect to proxy filter {proxy.service}: Connection timed out")

    async def send(self, data: bytes) -> None:
        if self.broken:
            raise _Trouble(PROXY_ERROR)
        assert self.stream is not None
        with trio.move_on_after(self.proxy.timeout):
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                raise self._fail(f"lost connection with proxy {self.proxy.service}") from None
            return
        raise self._fail(f"timeout talking to proxy {self.proxy.service}")

    async def command(self, line: str | None, want: str, passed_on: bool = True) -> Response:
        """Send line (None: only read, the greeting), read the reply; _Trouble
        unless its class is want, with the filter's 4xx/5xx reply when
        passed_on, else the generic one (greeting, EHLO, XFORWARD)."""
        if line is not None:
            await self.send(line.encode("utf-8", "surrogateescape") + b"\r\n")
        response = await self._reply()
        self.last_text = response.text
        if want and str(response.code)[0] != want:
            log.warning(rejected_warning(self.proxy.service, line, response))
            if response.code < 400 or not passed_on:
                # Postfix 2.6+: an unexpected 2xx or 3xx is not passed on.
                raise self._fail(None)
            raise _Trouble(response.reply)
        return response

    async def _reply(self) -> Response:
        if self.broken:
            raise _Trouble(PROXY_ERROR)
        assert self.stream is not None
        service = self.proxy.service
        with trio.move_on_after(self.proxy.timeout):
            while True:
                try:
                    response = self.reader.next_reply()
                except RemoteProtocolError as e:
                    raise self._fail(f"received garbage from proxy {service}: "
                                     f"{str(e).removeprefix('non-SMTP response: ')}") from None
                if response is not None:
                    return response
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    data = b""
                if not data:
                    raise self._fail(f"lost connection with proxy {service}")
                self.reader.feed(data)
        raise self._fail(f"timeout talking to proxy {service}")

    def close(self) -> None:
        """QUIT without waiting for the answer, then close (Postfix 3.7 sends
        QUIT at the end of each transaction, seen live)."""
        stream, self.stream = self.stream, None
        if stream is None:
            return
        sock = stream.socket
        if not self.broken:
            try:
                os.write(sock.fileno(), b"QUIT\r\n")      # a fresh socket buffer takes 6 bytes
            except OSError:
                pass
        sock.close()


class FilterTransaction:
    """One mail transaction through the filter; see the module description."""

    def __init__(self, proxy: ProxyFilter, mail_raw: str, xforward: Mapping[str, str | None]) -> None:
        self.proxy = proxy
        self.mail_raw = mail_raw
        self.xforward = dict(xforward)
        self.conn = _Connection(proxy)
        self.failed: Reply | None = None      # the content phase went wrong: the final answer
        self.data_started = False
        self._stuffer = DotStuffer()
        # speed_adjust: the RCPT commands and the header, replayed by finish().
        self._rcpts: list[str] = []
        self._header = b""

    @property
    def last_text(self) -> str:
        return self.conn.last_text

    async def open(self) -> Reply | None:
        """Connect, greet, EHLO, XFORWARD and MAIL; the refusal, or None."""
        if self.proxy.speed_adjust:
            return None
        try:
            await self._open()
        except _Trouble as t:
            self.close()
            return t.reply
        return None

    async def _open(self) -> None:
        conn = self.conn
        await conn.connect()
        # The client waits for the answer to its RCPT: smtpd makes up its own
        # rather than pass on what a filter says to these (smtpd_proxy.c).
        await conn.command(None, WANT_OK, passed_on=False)
        ehlo = await conn.command(f"EHLO {self.proxy.ehlo_name}", WANT_OK, passed_on=False)
        for line in xforward_commands(ehlo, self.xforward):
            await conn.command(line, WANT_OK, passed_on=False)
        await conn.command(self.mail_raw, WANT_OK)

    async def rcpt(self, raw: str) -> Reply | None:
        if self.proxy.speed_adjust:
            self._rcpts.append(raw)
            return None
        try:
            await self.conn.command(raw, WANT_OK)
        except _Trouble as t:
            return t.reply
        return None

    async def data(self, header: bytes) -> Reply | None:
        """DATA, then header (our Received: and any PREPEND lines, CRLF ended)."""
        self.data_started = True
        if self.proxy.speed_adjust:
            self._header = header
            return None
        self.failed = None                    # a client may try DATA again
        try:
            await self.conn.command("DATA", WANT_MORE)
        except _Trouble as t:
            self.failed = t.reply
            return t.reply
        await self.content(header)
        return None

    async def content(self, piece: bytes) -> None:
        """Stream one piece of content; a failure is kept for finish()."""
        if self.failed is not None:
            return
        wire = self._stuffer.feed(piece)
        if not wire:
            return
        try:
            await self.conn.send(wire)
        except _Trouble as t:
            self.failed = t.reply

    async def finish(self, spooled: BinaryIO | None = None) -> tuple[bool, Reply]:
        """End the message: (accepted, the reply for the client)."""
        try:
            if self.proxy.speed_adjust:
                response = await self._replay(spooled)
            else:
                if self.failed is not None:
                    return False, self.failed
                await self.conn.send(self._stuffer.end())
                response = await self.conn.command(None, WANT_ANY)
        except _Trouble as t:
            return False, t.reply
        return response.code // 100 == 2, response.reply

    async def _replay(self, spooled: BinaryIO | None) -> Response:
        await self._open()
        conn = self.conn
        for raw in self._rcpts:
            await conn.command(raw, WANT_OK)
        await conn.command("DATA", WANT_MORE)
        stuffer = self._stuffer
        await conn.send(stuffer.feed(self._header))
        if spooled is not None:
            spooled.seek(0)
            while piece := spooled.read(REPLAY_PIECE):
                wire = stuffer.feed(piece)
                if wire:
                    await conn.send(wire)
        await conn.send(stuffer.end())
        return await conn.command(None, WANT_ANY)

    def close(self) -> None:
        self.conn.close()


__all__ = ["ProxyFilter", "FilterTransaction", "PROXY_ERROR"]
