"""mailsys.smtp - the ESMTP protocol core, without I/O.

Bytes in, events out, replies to bytes: ServerConnection (server.py) is
what services/smtpd drives over a trio stream; it imports no trio, socket,
ssl or lmdb. Everything in __all__ is the public surface; the _modules are
private.
"""

from . import replies
from ._state import State
from .address import AddressParts, Path, parse_path, routing_tricks, split_address
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    REPLY_OWED,
    Auth,
    AuthResponse,
    Bdat,
    ConnectionClosed,
    DataChunk,
    DataRejected,
    DataStart,
    EndOfChunk,
    EndOfData,
    Etrn,
    Event,
    Helo,
    MailFrom,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTls,
    Vrfy,
    Xclient,
    Xforward,
)
from .replies import Reply
from .server import ServerConnection
from ._xclient import xtext_encode
from .settings import Settings

__all__ = [
    "AddressParts",
    "Auth",
    "AuthResponse",
    "Bdat",
    "ConnectionClosed",
    "DataChunk",
    "DataRejected",
    "DataStart",
    "EndOfChunk",
    "EndOfData",
    "Etrn",
    "Event",
    "Helo",
    "LocalProtocolError",
    "MailFrom",
    "NEED_DATA",
    "Noop",
    "PAUSED",
    "Path",
    "ProtocolError",
    "Quit",
    "REPLY_OWED",
    "RcptTo",
    "RemoteProtocolError",
    "Reply",
    "Rset",
    "ServerConnection",
    "Settings",
    "StartTls",
    "State",
    "Vrfy",
    "Xclient",
    "Xforward",
    "parse_path",
    "replies",
    "routing_tricks",
    "split_address",
    "xtext_encode",
]
