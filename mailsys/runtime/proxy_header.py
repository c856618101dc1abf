"""proxy_header - read the PROXY header a load balancer sends before SMTP.

SYNOPSIS
    from mailsys.runtime.proxy_header import read_proxy_header
    found = await read_proxy_header(stream, timeout)    # mailsys.smtp.haproxy.Proxied

DESCRIPTION
    smtpd_upstream_proxy_protocol and postscreen_upstream_proxy_protocol =
    haproxy: the first bytes of the connection are HAProxy's PROXY header
    (version 1 or 2, parsed by mailsys.smtp.haproxy), and the client is
    the one it names. The header is peeked at until it is whole and only
    then taken off the socket, so that not one byte of the SMTP session
    after it is read away.

    A bad header is HaproxyError whose text is Postfix's "REASON: HEADER"
    (the header escaped as Postfix's log shows it); one that is not whole
    within the timeout is "missing protocol header terminator: HEADER", and
    a connection that sent nothing in that time HaproxyTimeout, "timeout
    error: " (smtpd's words; postscreen says "time limit exceeded").
    Postfix's postscreen looks once, at the first bytes that arrive: with
    patient=False a header not whole in them is refused at once.
"""

from __future__ import annotations

import socket

import trio

from mailsys.maillog import postfix as postfix_log
from mailsys.smtp.haproxy import V1_MAX, HaproxyError, Proxied, parse_proxy

class HaproxyTimeout(HaproxyError):
    """Nothing arrived within the time limit."""


# While a PROXY header is not whole, the socket is peeked at again this often.
PROXY_POLL = 0.01


async def read_proxy_header(stream: trio.abc.Stream, timeout: float, *,
                            patient: bool = True) -> Proxied:
    """The PROXY header at the start of the connection, taken off the socket
    (HaproxyError, its text "REASON: HEADER" as Postfix logs it). The bytes
    are peeked until the header is whole, so that nothing after it is read
    away from the SMTP session."""
    sock = stream.socket
    data = b""
    with trio.move_on_after(timeout):
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data = sock.recv(V1_MAX + 536, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError as e:
                raise HaproxyError(f"{e.strerror}: ") from None
            try:
                found = parse_proxy(data, more_to_come=patient and bool(data))
            except HaproxyError as e:
                raise HaproxyError(f"{e}: {_header_text(data)}") from None
            if found is not None:
                sock.recv(found.length)           # peeked: there already
                return found
            await trio.sleep(PROXY_POLL)         # still readable: wait for the rest
    if not data:
        raise HaproxyTimeout("timeout error: ")
    raise HaproxyError(f"missing protocol header terminator: {_header_text(data)}")


def _header_text(data: bytes) -> str:
    end = data.find(b"\n")
    return postfix_log.escape(data if end < 0 else data[:end + 1])
