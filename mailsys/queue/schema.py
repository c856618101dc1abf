"""schema - the layout of the queue's LMDB environment.

DESCRIPTION
    One LMDB environment, in queue_directory/lmdb, holds these named
    databases (all with default flags: no dupsort, byte-ordered keys; LMDB
    makes a database's flags permanent, so they never change):

    meta      b"schema_version" -> ASCII decimal SCHEMA_VERSION
              b"count/<queue>"  -> 8-byte big-endian number of entries
    envelope  qid               -> records.encode(envelope, queue)
    content   qid               -> the message content, one value
    queue     b"<queue>/" + qid -> b""   (one key per entry: list by queue)
    due       8-byte big-endian next_attempt in microseconds + qid -> b""
              (deferred entries only: "due before T" is a prefix scan)

    Queue IDs are fixed-length ASCII in arrival order (mailsys.message.qid),
    so a cursor over a queue's keys walks its entries oldest first. Every
    write keeps envelope, content, queue, due and the counts consistent in
    one transaction.

    SCHEMA_VERSION names this layout. It is written when the environment is
    created and checked at every open; a store with any other version is
    refused with a clear QueueError rather than misread. Any change to the
    databases or key layout above bumps it. (The envelope value format has
    its own version byte, see records.py, and evolves without a bump.)
"""

from __future__ import annotations

import struct
from enum import Enum

SCHEMA_VERSION = 1

META_DB = b"meta"
ENVELOPE_DB = b"envelope"
CONTENT_DB = b"content"
QUEUE_DB = b"queue"
DUE_DB = b"due"
ALL_DBS = (META_DB, ENVELOPE_DB, CONTENT_DB, QUEUE_DB, DUE_DB)

VERSION_KEY = b"schema_version"

# LMDB needs named databases counted in advance; room for future ones.
MAX_DBS = 16

ENV_SUBDIR = "lmdb"


class Queue(str, Enum):
    """The queues an entry can be in (Postfix's queue directories)."""

    INCOMING = "incoming"
    ACTIVE = "active"
    DEFERRED = "deferred"
    HOLD = "hold"
    CORRUPT = "corrupt"


# One byte per queue inside an envelope record. Never renumber.
QUEUE_CODE = {Queue.INCOMING: 1, Queue.ACTIVE: 2, Queue.DEFERRED: 3,
              Queue.HOLD: 4, Queue.CORRUPT: 5}
CODE_QUEUE = {v: k for k, v in QUEUE_CODE.items()}

_U64 = struct.Struct(">Q")


def queue_key(queue: Queue, qid: str) -> bytes:
    return queue.value.encode() + b"/" + qid.encode()


def queue_prefix(queue: Queue) -> bytes:
    return queue.value.encode() + b"/"


def count_key(queue: Queue) -> bytes:
    return b"count/" + queue.value.encode()


_MAX_MICROS = 2**64 - 1


def _micros(t: float) -> int:
    """t in whole microseconds, clamped to what 8 bytes hold (inf and
    far-future times sort last, negative and NaN first)."""
    if not t > 0:
        return 0
    if t >= _MAX_MICROS / 1_000_000:
        return _MAX_MICROS
    return int(t * 1_000_000)


def due_key(next_attempt: float, qid: str) -> bytes:
    return _U64.pack(_micros(next_attempt)) + qid.encode()


def due_bound(before: float) -> bytes:
    """The smallest due key later than every entry due at or before `before`."""
    micros = _micros(before)
    if micros == _MAX_MICROS:
        return b"\xff" * (_U64.size + 1)     # after any key: qids are ASCII
    return _U64.pack(micros + 1)


def due_time(key: bytes) -> float:
    return _U64.unpack(key[:_U64.size])[0] / 1_000_000


def due_qid(key: bytes) -> str:
    return key[_U64.size:].decode()


def pack_count(n: int) -> bytes:
    return _U64.pack(n)


def unpack_count(value: bytes | None) -> int:
    return _U64.unpack(value)[0] if value else 0
