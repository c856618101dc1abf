"""ipc - typed messages between mailsys processes: Postfix's mail_proto.h and attr_*.c.

    frames.py    sans-IO length-prefixed frames: header + raw payload
    codec.py     @message dataclasses <-> frames; strict on missing fields, lenient on extra
    messages.py  Hello, Ok, ErrorReply (+ ErrorCode): what every service speaks
    proto/       one module per service protocol (cleanup.py, qmgr.py, ...)
    names.py     service names, private/ and public/ socket paths, trigger bytes
    errors.py    IpcError tree

The I/O side (connect, call, serve, triggers over trio) is
mailsys.runtime.ipc_io. This package is pure: no trio, socket or lmdb.
"""

from mailsys.ipc.codec import decode, encode, encode_parts, message, registered
from mailsys.ipc.errors import (IpcError, IpcLost, IpcTimeout, IpcUnavailable, ProtocolError,
                                RemoteError)
from mailsys.ipc.frames import MAX_FRAME, Frame, FrameDecoder, encode_frame, frame_parts
from mailsys.ipc.messages import ErrorCode, ErrorReply, Hello, Ok

__all__ = [
    "ErrorCode",
    "ErrorReply",
    "Frame",
    "FrameDecoder",
    "Hello",
    "IpcError",
    "IpcLost",
    "IpcTimeout",
    "IpcUnavailable",
    "MAX_FRAME",
    "Ok",
    "ProtocolError",
    "RemoteError",
    "decode",
    "encode",
    "encode_frame",
    "encode_parts",
    "frame_parts",
    "message",
    "registered",
]
