"""errors - what can go wrong between two mailsys processes.

    MailsysError                          (mailsys.errors)
    ├── IpcError                          anything in this package
    │   ├── ProtocolError                 a malformed frame or message, from either side:
    │   │                                 bad length, garbage header, unknown message name,
    │   │                                 version mismatch, missing field, wrong field type,
    │   │                                 wrong protocol announcement, unexpected reply type
    │   ├── RemoteError(code, text)       the peer answered with an ErrorReply
    │   └── IpcTimeout                    no complete answer within the caller's deadline
    └── ServiceUnavailable                (mailsys.errors)
        └── IpcUnavailable (also IpcError)  socket missing, connection refused, or the
            │                             peer closed the connection before answering
            └── IpcLost                   ... after it had the whole request: it may
                                          have acted on it (a delivery agent that died)

A ProtocolError means the bytes on the wire were wrong; it never means a bug
in the receiver. Encoding a value of the wrong Python type is a bug in the
sender and raises TypeError instead, before anything is written.

Only mailsys.runtime.ipc_io raises IpcTimeout and IpcUnavailable; the codec
and the framing layer raise ProtocolError alone.
"""

from __future__ import annotations

from mailsys.errors import MailsysError, ServiceUnavailable

__all__ = ["IpcError", "ProtocolError", "RemoteError", "IpcTimeout", "IpcUnavailable", "IpcLost"]


class IpcError(MailsysError):
    """Base of every inter-process messaging error."""


class ProtocolError(IpcError):
    """The bytes received are not a valid frame or message."""


class RemoteError(IpcError):
    """The service answered a request with an ErrorReply.

    ``code`` is one of the short codes in ``mailsys.ipc.messages.ErrorCode``
    ("unavailable", "queue_full", ...), so a caller can pick its SMTP reply
    without parsing ``text``.
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


class IpcTimeout(IpcError):
    """The service did not answer within the deadline."""


class IpcUnavailable(IpcError, ServiceUnavailable):
    """The service cannot be reached, or hung up before answering."""


class IpcLost(IpcUnavailable):
    """The service hung up after the whole request was written, before its
    reply. Postfix's qmgr tells the two apart for a delivery agent: one it
    cannot reach or hand the request to is "mail transport unavailable",
    one that dies after that an "unknown mail transport error"
    (qmgr_deliver.c)."""
