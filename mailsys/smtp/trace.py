"""trace - SMTP sessions that report every command and reply line.

SYNOPSIS
    conn = TracedServerConnection(settings, trace=chat)      # smtpd side
    cc = TracedClientConnection(helo_name, trace=chat, ...)  # smtp side
    chat(direction, text)   # direction "<" (received) or ">" (sent)

DESCRIPTION
    Postfix's debug_peer_list raises the verbose level of an smtpd or smtp
    process for the peers it lists, and at any verbose level its chat code
    logs each line that crosses the connection (smtpd_chat.c, smtp_chat.c).
    These subclasses of the sans-IO connections do the same through a
    callback, so that a session with an unlisted peer uses the plain
    classes and pays nothing for the feature: the choice is made once,
    when the session starts.

    Server side (smtpd): every line read as a command or as an AUTH
    response is reported as "<" before the command filter sees it; every
    line of every reply written as ">". Message content is not reported.

    Client side (smtp): every command line as ">", with the message content
    shown as the single line "." that ends it, as Postfix logs it; every
    reply line as "<" exactly as the server sent it (made printable, cut at
    100 characters like Postfix's "%.100s"), before smtp_reply_filter.

    Pure: no I/O; the callback decides where the lines go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from mailsys.smtp._client_reply import LINE_LIMIT, ReplyReader, printable_line
from mailsys.smtp.client import ClientConnection
from mailsys.smtp.replies import Reply
from mailsys.smtp.server import ServerConnection
from mailsys.smtp.settings import Settings

Trace = Callable[[str, str], None]

# smtp_chat.c logs a server reply line with "%.100s".
CLIENT_REPLY_LOG_LIMIT = 100


def _lines(data: bytes) -> list[str]:
    return data.decode("utf-8", "surrogateescape").split("\r\n")[:-1]


class TracedServerConnection(ServerConnection):
    """A ServerConnection that reports each command line and reply line."""

    def __init__(self, settings: Settings | None = None, *, trace: Trace,
                 tls_active: bool = False, authenticated: bool = False) -> None:
        super().__init__(settings, tls_active=tls_active, authenticated=authenticated)
        self._trace = trace

    def _take_line(self, limit: int, cut: bool = False) -> bytes | None | Literal[False]:
        line = super()._take_line(limit, cut)
        if line:
            self._trace("<", line.decode("utf-8", "surrogateescape"))
        return line

    def send(self, reply: Reply) -> bytes:
        data = super().send(reply)
        for line in _lines(data):
            self._trace(">", line)
        return data


class _TracedReader(ReplyReader):
    __slots__ = ("_trace",)

    def __init__(self, trace: Trace, line_limit: int,
                 line_filter: Callable[[str], str | None] | None) -> None:
        super().__init__(line_limit, line_filter)
        self._trace = trace

    def _take_line(self) -> bytes | None:
        line = super()._take_line()
        if line is not None:
            self._trace("<", printable_line(line)[:CLIENT_REPLY_LOG_LIMIT])
        return line


class TracedClientConnection(ClientConnection):
    """A ClientConnection that reports each command line and reply line."""

    # ClientConnection's parameters, spelled out: compiled (setup.py),
    # super().__init__(*args, **kwargs) does not pass them on.
    def __init__(self, helo_name: str, *, trace: Trace, pipelining: bool = True,
                 line_limit: int = LINE_LIMIT, body_line_limit: int = 0,
                 tls_active: bool = False, lmtp: bool = False,
                 dummy_mail_auth: bool = False, discard: Iterable[str] = (),
                 reply_filter: Callable[[str], str | None] | None = None) -> None:
        super().__init__(helo_name, pipelining=pipelining, line_limit=line_limit,
                         body_line_limit=body_line_limit, tls_active=tls_active, lmtp=lmtp,
                         dummy_mail_auth=dummy_mail_auth, discard=discard,
                         reply_filter=reply_filter)
        self._trace = trace
        self._traced_reader()

    def _traced_reader(self) -> None:
        self._reader = _TracedReader(self._trace, self._line_limit, self._reply_filter)

    def tls_started(self) -> None:
        super().tls_started()
        self._traced_reader()

    def data_parts(self) -> list[bytes]:
        txn = self._txn
        body = txn.body if txn is not None else ()
        for item in self._out:
            if any(item is part for part in body):
                if item is body[-1]:
                    self._trace(">", ".")
            else:
                for line in _lines(item):
                    self._trace(">", line)
        return super().data_parts()


__all__ = ["Trace", "TracedClientConnection", "TracedServerConnection"]
