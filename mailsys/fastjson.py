"""fastjson - JSON through orjson, with the json module as the authority.

SYNOPSIS
    from mailsys import fastjson
    data = fastjson.dumps(obj, slow)        # bytes; slow(obj) -> bytes when orjson refuses
    obj = fastjson.loads(data, slow)        # slow(data) -> object when orjson refuses

DESCRIPTION
    Every service encodes and decodes JSON on its hot paths: each IPC frame
    header, each queue record, each log event on its way to postlogd. With
    the json module that was a tenth of all their CPU; orjson does the same
    work several times faster.

    Each caller keeps its json-module encoder and decoder as the reference,
    and passes them here as ``slow``. orjson is used only where it gives
    the same answer, and whatever it refuses goes to ``slow``, which
    answers exactly as before (or raises as before):

      - strings holding lone surrogates (surrogateescape'd client bytes),
        integers beyond 64 bits, keys that are not strings, types orjson
        does not know: encoded by slow;
      - surrogate escapes, NaN and Infinity literals, a byte order mark,
        bytes that are not UTF-8, numbers too large for a double: decoded
        (or refused) by slow;
      - any run of 19 or more digits that does not follow a decimal
        point: orjson would read an integer beyond 64 bits as a float, so
        such text goes to slow unread (a long digit run inside a string
        only costs the slower path). The digits of a fraction may run as
        long as they like: orjson reads them to the same double as the
        json module (0.0027017593383789062 is how a short delay prints).

    Dataclasses and datetimes are not orjson's to serialise (the json
    module would refuse them, or hand them to the caller's default): they
    go to ``default``, as with the json module.

    orjson writes a NaN or an infinity as null. A caller whose data may hold
    one wraps it in NonFinite, a float that orjson refuses, so that the
    json module writes it (NaN, Infinity); log fields need not, as they are
    cleaned of non-finite numbers before they are encoded.
    Output is compact (",", ":"), UTF-8, keys in insertion order, as the
    callers' encoders write it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "loads", "NonFinite"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
# Shorter than any integer outside orjson's exact range (-2**63 .. 2**64-1).
# With every digit made a "0", a run of them is found by one fast substring
# search (a regular expression took four times as long as orjson.loads).
_LONG_DIGITS = b"0" * 19
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_POINT, _ZERO = ord("."), ord("0")


def _long_integer(masked: bytes | bytearray) -> bool:
    """Whether masked (digits made "0") holds a run of 19 or more that is
    not a fraction's. find() gives the first place of a run, so the byte
    before it tells what the run is."""
    at = masked.find(_LONG_DIGITS)
    while at != -1:
        if at == 0 or masked[at - 1] != _POINT:
            return True
        end = at + len(_LONG_DIGITS)
        while end < len(masked) and masked[end] == _ZERO:
            end += 1
        at = masked.find(_LONG_DIGITS, end)
    return False


class NonFinite(float):
    """A NaN or an infinity to encode: see the module description."""

    __slots__ = ()


def dumps(obj: Any, slow: Callable[[Any], bytes],
          default: Callable[[Any], Any] | None = None) -> bytes:
    """obj as UTF-8 JSON bytes; slow(obj) for whatever orjson will not encode."""
    try:
        return orjson.dumps(obj, default=default, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return slow(obj)


def loads(data: bytes | bytearray | memoryview, slow: Callable[[Any], Any]) -> Any:
    """The object data holds; slow(data) for whatever orjson will not decode."""
    raw = data if isinstance(data, (bytes, bytearray)) else bytes(data)
    if _long_integer(raw.translate(_DIGITS_AS_ZERO)):
        return slow(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return slow(data)
