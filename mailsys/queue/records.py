"""records - the on-disk encoding of an envelope and its queue.

DESCRIPTION
    An envelope value in the queue store is

        byte 0    RECORD_VERSION (1)
        byte 1    the queue the entry is in (schema.QUEUE_CODE)
        byte 2-   UTF-8 JSON object: the Envelope's fields by name, with
                  "recipients" a list of objects keyed by Recipient field

    Fields equal to their default are left out, which keeps a typical
    record to a few hundred bytes, and the queue ID is left out because it
    is the key. Decoding takes the fields it knows and ignores the others,
    and a missing field is its default: adding a field to Envelope or
    Recipient needs no migration, and an older mailsys reads a newer
    record. Renaming or retyping a field does need one: bump
    RECORD_VERSION and teach decode() the old version.

    JSON rather than pickle (code execution from a file, tied to class
    paths) or struct (rigid, and the gain is small): the C json codec does
    a typical envelope both ways in well under the 0.5 ms a durable commit
    costs. Strings go through "surrogatepass" so any Python str an SMTP
    session produced (including undecodable bytes carried as surrogates)
    comes back unchanged.

    A record that cannot be decoded raises CorruptRecord. Moving an entry
    to another queue changes only byte 1 (requeue()), and finding the queue
    of an entry reads only that byte (decode_queue()).
"""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from typing import Any

from mailsys import fastjson
from mailsys.errors import QueueError
from mailsys.message.envelope import Envelope, Recipient
from mailsys.queue.schema import CODE_QUEUE, QUEUE_CODE, Queue

RECORD_VERSION = 1


class CorruptRecord(QueueError):
    """A queue record that this mailsys cannot read."""


def _defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out.append((f.name, f.default))
        else:
            out.append((f.name, dataclasses.MISSING))
    return tuple(out)


_ENV_FIELDS = tuple((n, d) for n, d in _defaults(Envelope)
                    if n not in ("queue_id", "recipients"))
_RCPT_FIELDS = _defaults(Recipient)
_ENV_NAMES = frozenset(n for n, _ in _ENV_FIELDS)
_RCPT_NAMES = frozenset(n for n, _ in _RCPT_FIELDS)

# The reference encoding (mailsys.fastjson): what orjson will not write or
# read, such as a string with a lone surrogate (surrogatepass).
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"),
                            check_circular=False)
_decoder = json.JSONDecoder()


def _dumps_slow(doc: object) -> bytes:
    return _encoder.encode(doc).encode("utf-8", "surrogatepass")


def _loads_slow(text: bytes | memoryview) -> Any:
    return _decoder.decode(bytes(text).decode("utf-8", "surrogatepass"))


def _plain(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else fastjson.NonFinite(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _fields(obj: Any, spec: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    out = {}
    for name, default in spec:
        value = getattr(obj, name)
        if value != default or default is dataclasses.MISSING:
            out[name] = _plain(value)
    return out


def encode(envelope: Envelope, queue: Queue) -> bytes:
    """encode - the stored value for envelope in queue."""
    doc = _fields(envelope, _ENV_FIELDS)
    doc["recipients"] = [_fields(r, _RCPT_FIELDS) for r in envelope.recipients]
    return bytes((RECORD_VERSION, QUEUE_CODE[Queue(queue)])) + fastjson.dumps(doc, _dumps_slow)


def requeue(value: bytes, queue: Queue) -> bytes:
    """requeue - a stored value with its queue changed: the envelope bytes
    are kept as they are, not decoded and encoded again."""
    _check_header(value)
    return value[:1] + bytes((QUEUE_CODE[Queue(queue)],)) + value[2:]


def decode_queue(value: bytes) -> Queue:
    """decode_queue - only the queue byte of a stored value."""
    _check_header(value)
    return CODE_QUEUE[value[1]]


def _check_header(value: bytes) -> None:
    if len(value) < 3 or value[0] != RECORD_VERSION or value[1] not in CODE_QUEUE:
        raise CorruptRecord(
            f"unreadable queue record (version byte {value[:1]!r}, "
            f"{len(value)} bytes; this mailsys reads version {RECORD_VERSION})")


def decode(qid: str, value: bytes) -> tuple[Envelope, Queue]:
    """decode - the envelope and queue from a stored value."""
    _check_header(value)
    try:
        doc = fastjson.loads(value[2:], _loads_slow)
        rcpts = tuple(Recipient(**{k: v for k, v in r.items() if k in _RCPT_NAMES})
                      for r in doc.pop("recipients"))
        fields = {k: v for k, v in doc.items() if k in _ENV_NAMES}
        envelope = Envelope(queue_id=qid, recipients=rcpts, **fields)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise CorruptRecord(f"{qid}: unreadable queue record: {e}") from None
    return envelope, CODE_QUEUE[value[1]]
