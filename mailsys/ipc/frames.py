"""frames - length-prefixed frames on a byte stream, without I/O.

SYNOPSIS
    data = encode_frame(header, payload)
    decoder = FrameDecoder(max_size=MAX_FRAME)
    for frame in decoder.feed(chunk): ...      # frame.header, frame.payload

DESCRIPTION
    Every message between two mailsys processes travels as one frame:

        offset 0   u32 big-endian   body length N (header + payload, not this prefix)
        offset 4   u32 big-endian   header length H, H <= N
        offset 8   H bytes          header (the codec puts compact JSON here)
        offset 8+H N-H bytes        payload (the codec puts raw blobs here)

    The payload is opaque to this layer, so message content travels as the
    bytes it is: never base64, never JSON-escaped. The same shape as
    Postfix's record (src/global/record.c: type, length, data), with a
    separate header so that small typed fields and large blobs each get the
    encoding that suits them.

    FrameDecoder is sans-IO (h11 style): the caller reads the socket and
    feeds what it got; feed() returns every frame completed by that data
    and buffers the rest. It never reads ahead of what it was given.

GUARANTEES
    A body longer than max_size raises ProtocolError as soon as its 8-byte
    prefix arrives, before anything is allocated for it, so a broken or
    hostile peer cannot make the reader buffer more than max_size. feed()
    raises nothing but ProtocolError, and after one the decoder is unusable
    (the stream has lost its frame boundaries: close the connection).

    Copies: a frame that arrives whole inside one chunk is not copied at all
    (its payload is a view of that chunk); a frame that spans chunks is
    copied once into a buffer of exactly its size, allocated when its prefix
    arrives. No per-byte Python loops.
"""

from __future__ import annotations

import struct

from mailsys.frozen import frozen
from mailsys.ipc.errors import ProtocolError

__all__ = ["Frame", "FrameDecoder", "encode_frame", "frame_parts", "MAX_FRAME", "PREFIX_SIZE"]

_PREFIX = struct.Struct(">II")
PREFIX_SIZE = _PREFIX.size

# 64 MiB: comfortably above Postfix's message_size_limit default (10240000)
# plus envelope, and far below what one connection may pin in memory. A
# site that raises message_size_limit passes a larger max_size/max_frame.
MAX_FRAME = 64 * 1024 * 1024

# The wire format cannot express more than a u32 body.
_U32_MAX = 0xFFFFFFFF


@frozen
class Frame:
    """One decoded frame: the header bytes and a read-only view of the payload."""

    header: bytes
    payload: memoryview


def frame_parts(header: bytes, blobs: tuple | list = (), *,
                max_size: int = MAX_FRAME) -> list:
    """Return the frame as a list of bytes-like parts, blobs uncopied.

    The first part is prefix + header; the rest are the blobs as given, so a
    writer can send a large blob without first concatenating it. Raises
    ProtocolError if the frame would exceed max_size.
    """
    size = len(header) + sum(map(len, blobs))
    if size > min(max_size, _U32_MAX):
        raise ProtocolError(f"frame too large: {size} bytes, limit {max_size}")
    return [_PREFIX.pack(size, len(header)) + header, *blobs]


def encode_frame(header: bytes, payload: bytes = b"", *, max_size: int = MAX_FRAME) -> bytes:
    """Return one whole frame holding header and payload."""
    return b"".join(frame_parts(header, (payload,) if payload else (), max_size=max_size))


class FrameDecoder:
    """Split a byte stream into Frames; see the module docstring."""

    __slots__ = ("_max", "_prefix", "_body", "_fill", "_hlen", "_failed")

    def __init__(self, max_size: int = MAX_FRAME) -> None:
        self._max = max_size
        self._prefix = bytearray()        # 0..7 bytes of a prefix split across chunks
        self._body: bytearray | None = None   # the body of a frame split across chunks
        self._fill = 0
        self._hlen = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet (0 at a frame boundary)."""
        return len(self._prefix) + (PREFIX_SIZE + self._fill if self._body is not None else 0)

    def feed(self, data: bytes) -> list[Frame]:
        """Consume data; return the frames it completes, in order."""
        if self._failed:
            raise ProtocolError("frame decoder used after a protocol error")
        if not isinstance(data, bytes):
            data = bytes(data)    # frames may view data, so it must be immutable
        frames: list[Frame] = []
        view = memoryview(data)
        end = len(data)
        pos = 0
        while pos < end:
            if self._body is not None:
                pos = self._fill_body(view, pos, end, frames)
            elif self._prefix or end - pos < PREFIX_SIZE:
                take = min(PREFIX_SIZE - len(self._prefix), end - pos)
                self._prefix += view[pos:pos + take]
                pos += take
                if len(self._prefix) == PREFIX_SIZE:
                    size, hlen = self._check(self._prefix, 0)
                    self._prefix.clear()
                    self._start_body(size, hlen, frames)
            else:
                size, hlen = self._check(data, pos)
                start = pos + PREFIX_SIZE
                stop = start + size
                if stop <= end:
                    # The common case: the whole frame is in this chunk. View it.
                    frames.append(Frame(data[start:start + hlen], view[start + hlen:stop]))
                    pos = stop
                else:
                    pos = start
                    self._start_body(size, hlen, frames)
        return frames

    def _check(self, buf: bytes | bytearray, pos: int) -> tuple[int, int]:
        size, hlen = _PREFIX.unpack_from(buf, pos)
        if size > self._max:
            self._failed = True
            raise ProtocolError(f"frame too large: {size} bytes, limit {self._max}")
        if hlen > size:
            self._failed = True
            raise ProtocolError(f"bad frame: header length {hlen} exceeds frame length {size}")
        return size, hlen

    def _start_body(self, size: int, hlen: int, frames: list[Frame]) -> None:
        self._hlen = hlen
        self._fill = 0
        self._body = bytearray(size)
        if size == 0:
            self._finish_body(frames)

    def _fill_body(self, view: memoryview, pos: int, end: int, frames: list[Frame]) -> int:
        body = self._body
        assert body is not None
        take = min(len(body) - self._fill, end - pos)
        body[self._fill:self._fill + take] = view[pos:pos + take]
        self._fill += take
        if self._fill == len(body):
            self._finish_body(frames)
        return pos + take

    def _finish_body(self, frames: list[Frame]) -> None:
        body = self._body
        assert body is not None
        self._body = None
        # The bytearray now belongs to the frame alone and is never resized,
        # so a view of it stays valid; toreadonly() keeps receivers honest.
        whole = memoryview(body).toreadonly()
        frames.append(Frame(whole[:self._hlen].tobytes(), whole[self._hlen:]))
