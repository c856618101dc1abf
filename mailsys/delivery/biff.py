"""biff - tell comsat that a mailbox got new mail (Postfix biff_notify(3)).

SYNOPSIS
    from mailsys.delivery import biff
    biff.notify("bob", 1600)      # UDP "bob@1600\\0" to localhost:biff (512)

DESCRIPTION
    After local(8) appends a message to a UNIX-style mailbox it sends
    comsat(8) one datagram: the user's login name, "@", the offset in the
    mailbox where the new message starts, and a NUL byte (mailbox.c,
    biff_notify.c), unless biff = no. Postfix 3.7.11 delivering to
    nobody's 1600-byte mailbox sent b"nobody@1600\\x00" from 127.0.0.1 to
    127.0.0.1:512. Maildir deliveries, virtual(8) and /file destinations
    send nothing.

    The socket is made once per process and reused; the service and the
    address are looked up once they resolve (Postfix: getservbyname("biff",
    "udp"), gethostbyname("localhost")). A datagram to a port nobody
    listens on costs one sendto(): an unconnected UDP socket hears no
    "port unreachable". A failure is a warning, never a delivery problem.
"""

from __future__ import annotations

import socket

import structlog

log = structlog.get_logger()

_address: tuple[str, int] | None = None
_sock: socket.socket | None = None


def _target() -> tuple[str, int] | None:
    global _address
    if _address is None:
        try:
            port = socket.getservbyname("biff", "udp")
        except OSError:
            log.warning("service not found: biff/udp")
            return None
        try:
            host = socket.gethostbyname("localhost")
        except OSError:
            log.warning("host not found: localhost")
            return None
        _address = (host, port)
    return _address


def notify(user: str, offset: int) -> None:
    """Send comsat "user@offset" (see DESCRIPTION)."""
    global _sock
    target = _target()
    if target is None:
        return
    try:
        if _sock is None:
            _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            _sock.setblocking(False)
        _sock.sendto(f"{user}@{offset}".encode("utf-8", "surrogateescape") + b"\0", target)
    except OSError as e:
        log.warning(f"biff_notify: {e.strerror}")


__all__ = ["notify"]
