"""messages - the messages every mailsys service speaks.

DESCRIPTION
    Hello      the first frame a server sends on every connection, naming
               its protocol (Postfix: ``protocol=<name>``, src/bounce/bounce.c);
               the client checks it before sending anything.
    Ok         a reply that carries nothing but success.
    ErrorReply a failed request. An error is a message too: the server sends
               it in place of the reply, and mailsys.runtime.ipc_io turns it
               into RemoteError(code, text) on the client side. ``code`` is
               one of ErrorCode, so the caller can choose its own answer (an
               SMTP 451 or 452) without parsing ``text``.

    Triggers are not messages. A trigger (mailsys.ipc.names TRIGGER_*,
    QMGR_REQ_*) is a few raw bytes written to a socket and closed, with no
    Hello and no reply, as in Postfix (src/global/mail_trigger.c).

WHERE SERVICE MESSAGES GO
    Each service's requests and replies live in their own small module,
    mailsys/ipc/proto/<service>.py (proto/cleanup.py: CleanupRequest,
    Queued; proto/qmgr.py; proto/anvil.py ...), so protocols grow side by
    side without touching each other. Names are global: a service's messages
    are named "<service>_<what>" ("cleanup_request", "anvil_query"); the
    codec refuses a name registered twice. A module defining a message must
    be imported by both ends before the first decode, which importing the
    classes to use them already does.
"""

from __future__ import annotations

import enum

from mailsys.frozen import frozen
from mailsys.ipc.codec import message

__all__ = ["Hello", "Ok", "ErrorReply", "ErrorCode"]


class ErrorCode(enum.StrEnum):
    """The codes an ErrorReply may carry."""

    UNAVAILABLE = "unavailable"   # a resource the service needs is down (451 4.3.0)
    QUEUE_FULL = "queue_full"     # no room in the queue (452 4.3.1)
    WRITE_ERROR = "write_error"   # the durable commit failed (451 4.3.0)
    PROTOCOL = "protocol"         # the request was malformed (451 4.3.0 internal protocol error)
    INTERNAL = "internal"         # a bug in the service; it has logged a traceback


@message("hello", version=1)
@frozen
class Hello:
    """The server's protocol announcement."""

    protocol: str


@message("ok", version=1)
@frozen
class Ok:
    """Success, with nothing to report."""


@message("error", version=1)
@frozen
class ErrorReply:
    """A request failed; see ErrorCode."""

    code: str
    text: str
