"""lmtp_server - a real LMTP server (aiosmtpd.lmtp.LMTP) for the lmtp agent's tests.

Loaded by path from the test modules (the tests directories are not
packages). LmtpServer runs in a thread on a UNIX-domain socket or on a
loopback TCP port; what a recipient gets is decided by its local part:

    norcpt*   550 5.1.1 to RCPT TO
    defer*    452 4.2.2 after the final dot (its own LMTP reply)
    bounce*   550 5.2.1 after the final dot
    anything else   250 2.0.0 <addr> Saved

aiosmtpd's LMTP answers the end of DATA with the one status a handler
returns; a status of several lines joined by CRLF is several replies, one
per accepted recipient, as RFC 2033 wants. pipelining=True adds PIPELINING
to its LHLO reply (aiosmtpd reads pipelined commands either way).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller, UnixSocketController
from aiosmtpd.lmtp import LMTP


@dataclass
class Received:
    lhlo: str
    sender: str
    rcpts: list[str]
    data: bytes


def reply_for(address: str) -> str:
    if address.startswith("defer"):
        return f"452 4.2.2 <{address}> Mailbox is full"
    if address.startswith("bounce"):
        return f"550 5.2.1 <{address}> Mailbox disabled"
    return f"250 2.0.0 <{address}> Saved"


@dataclass
class Handler:
    pipelining: bool = False
    messages: list[Received] = field(default_factory=list)
    sessions: int = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # LMTP's LHLO goes through aiosmtpd's EHLO code and this hook.
        session.host_name = hostname
        self.sessions += 1
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("norcpt"):
            return f"550 5.1.1 <{address}> User doesn't exist"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(Received(session.host_name, envelope.mail_from,
                                      list(envelope.rcpt_tos), envelope.original_content))
        return "\r\n".join(reply_for(r) for r in envelope.rcpt_tos)


class _Tcp(Controller):
    def factory(self):
        return LMTP(self.handler, hostname="lmtp.test")


class _Unix(UnixSocketController):
    def factory(self):
        return LMTP(self.handler, hostname="lmtp.test")


class LmtpServer:
    """with LmtpServer(path="/q/private/lmtp") as s, or LmtpServer(port=N)."""

    def __init__(self, *, path: str | None = None, port: int | None = None,
                 pipelining: bool = False) -> None:
        self.handler = Handler(pipelining=pipelining)
        self.path, self.port = path, port
        self._controller = (_Unix(self.handler, unix_socket=path) if path
                            else _Tcp(self.handler, hostname="127.0.0.1", port=port))

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def __enter__(self) -> LmtpServer:
        if self.path:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()
