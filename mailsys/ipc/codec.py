"""codec - the one codec for every message between mailsys processes.

SYNOPSIS
    @message("cleanup_request", version=1)
    @dataclass(frozen=True, slots=True)
    class CleanupRequest:
        sender: str
        content: bytes

    data = encode(CleanupRequest(...))          # one whole frame
    msg = decode(frame)                         # a Frame from FrameDecoder, or bytes

DESCRIPTION
    A message is a frozen dataclass registered under a name and a version.
    On the wire (see frames.py) its frame header is compact UTF-8 JSON
    (mailsys.fastjson; a string holding a lone surrogate is written as an
    ASCII escape):

        {"n": "cleanup_request", "v": 1, "f": {"sender": "a@b", "content": 0}, "b": [102400]}

    "f" holds the fields by name; a field whose value is its dataclass
    default (a plain default, not a default_factory) is left out, and the
    receiver's dataclass fills it in, so a default is part of the protocol.
    A bytes field holds an index into "b",
    the list of blob lengths; the blobs themselves follow the header raw, in
    the frame payload. So message content of any size crosses without
    escaping, and the JSON stays small.

    Field types: str, int, float, bool, bytes, None, ``X | None``,
    ``tuple[X, ...]`` and fixed ``tuple[X, Y]``, ``dict[str, X]``, and
    nested dataclasses (registered or not; a nested one travels as a JSON
    object by the same field rules, under the version of the outer message).
    The converters for a class are compiled once, from its type hints.

    The rules are Postfix's attr_scan0.c rules for an evolving protocol:
    an unknown extra field is ignored, so a newer sender can talk to an
    older receiver; a missing field is an error unless the dataclass gives
    it a default, so a field added with a default needs no version bump; an
    unknown message name or a different version is an error.

ERRORS
    decode() raises only ProtocolError, whatever the bytes. encode() raises
    TypeError for a value that does not match its field's type, or for an
    unregistered class: those are bugs in the sender, found before any byte
    is written. message() raises TypeError at import time for a field type
    the codec cannot carry, and ValueError for a name used twice.

    Pure: imports no trio, socket or lmdb.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from mailsys import fastjson
from mailsys.ipc.errors import ProtocolError
from mailsys.ipc.frames import MAX_FRAME, Frame, FrameDecoder, encode_frame, frame_parts

__all__ = ["message", "encode", "encode_parts", "decode", "registered",
           "Frame", "FrameDecoder", "encode_frame", "MAX_FRAME"]

T = TypeVar("T")

# An encoder appends blobs to the list it is given and returns a JSON value;
# a decoder gets the JSON value and the blob table and returns the Python value.
Encoder = Callable[[Any, list], Any]
Decoder = Callable[[Any, "_Blobs"], Any]


@dataclasses.dataclass(slots=True)
class _Entry:
    cls: type
    name: str
    version: int
    encode: Encoder | None = None      # compiled on first use: nested classes may come later
    decode: Decoder | None = None


_BY_NAME: dict[str, _Entry] = {}
_BY_CLASS: dict[type, _Entry] = {}

# The reference encoding (mailsys.fastjson): what orjson will not write or read.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=True)
_DECODER = json.JSONDecoder()


def _dumps_slow(head: object) -> bytes:
    return _ENCODER.encode(head).encode("ascii")


def _loads_slow(header: bytes | memoryview) -> Any:
    return _DECODER.decode(bytes(header).decode())

# What a field absent from the peer's object reads as (no JSON value is it).
_MISSING = object()


def message(name: str, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a dataclass as the message ``name``, ``version``."""
    if not name or not isinstance(name, str):
        raise ValueError("message name must be a non-empty string")
    if type(version) is not int or version < 1:
        raise ValueError(f"message {name}: version must be a positive int")

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"message {name}: {cls.__qualname__} is not a dataclass "
                            "(put @message above @dataclass)")
        if name in _BY_NAME:
            raise ValueError(f"message name {name!r} already used by {_BY_NAME[name].cls.__qualname__}")
        entry = _Entry(cls, name, version)
        try:
            _compile(entry)
        except NameError:
            pass   # a forward reference to a class defined later: compile on first use
        _BY_NAME[name] = entry
        _BY_CLASS[cls] = entry
        return cls

    return register


def registered(cls: type) -> tuple[str, int]:
    """Return (name, version) of a registered message class; KeyError if none."""
    entry = _BY_CLASS[cls]
    return entry.name, entry.version


def encode_parts(msg: object, *, max_size: int = MAX_FRAME) -> list:
    """Return msg as a frame in parts (prefix + header, then each blob uncopied)."""
    entry = _BY_CLASS.get(type(msg))
    if entry is None:
        raise TypeError(f"{type(msg).__qualname__} is not a registered message")
    if entry.encode is None:
        _compile(entry)
    blobs: list = []
    fields = entry.encode(msg, blobs)
    head: dict[str, Any] = {"n": entry.name, "v": entry.version, "f": fields}
    if blobs:
        head["b"] = [len(b) for b in blobs]
    return frame_parts(fastjson.dumps(head, _dumps_slow), blobs, max_size=max_size)


def encode(msg: object, *, max_size: int = MAX_FRAME) -> bytes:
    """Return msg as one whole frame."""
    return b"".join(encode_parts(msg, max_size=max_size))


def decode(frame: Frame | bytes) -> Any:
    """Return the message object a frame (or the bytes of exactly one frame) holds."""
    if not isinstance(frame, Frame):
        frame = _one_frame(frame)
    try:
        head = fastjson.loads(frame.header, _loads_slow)
    except (ValueError, RecursionError) as e:      # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"bad frame header: {e}") from None
    if not isinstance(head, dict):
        raise ProtocolError("bad frame header: not a JSON object")
    name, version, fields = head.get("n"), head.get("v"), head.get("f")
    if not isinstance(name, str):
        raise ProtocolError("bad frame header: no message name")
    entry = _BY_NAME.get(name)
    if entry is None:
        raise ProtocolError(f"unknown message {name!r}")
    if type(version) is not int or version != entry.version:
        raise ProtocolError(f"message {name}: version {version!r}, expected {entry.version}")
    if not isinstance(fields, dict):
        raise ProtocolError(f"message {name}: no field object")
    lengths = head.get("b")
    blobs = _NO_BLOBS if lengths is None and not frame.payload else _Blobs(
        [] if lengths is None else lengths, frame.payload)
    if entry.decode is None:
        try:
            _compile(entry)
        except NameError as e:
            raise TypeError(f"message {name}: cannot resolve field types: {e}") from None
    return entry.decode(fields, blobs)


def _one_frame(data: bytes) -> Frame:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    if len(frames) != 1 or decoder.buffered:
        raise ProtocolError(f"expected exactly one frame, got {len(frames)}"
                            + (" and a truncated one" if decoder.buffered else ""))
    return frames[0]


class _Blobs:
    """The blob table of one frame: lengths from the header, bytes from the payload."""

    __slots__ = ("_payload", "_offsets")

    def __init__(self, lengths: Any, payload: memoryview) -> None:
        if not isinstance(lengths, list) or not all(type(n) is int and n >= 0 for n in lengths):
            raise ProtocolError("bad frame header: blob table is not a list of lengths")
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        if offsets[-1] != len(payload):
            raise ProtocolError(f"bad frame: blobs total {offsets[-1]} bytes, payload has {len(payload)}")
        self._payload = payload
        self._offsets = offsets

    def get(self, index: Any) -> bytes:
        if type(index) is not int or not 0 <= index < len(self._offsets) - 1:
            raise ProtocolError(f"bad blob reference {index!r}")
        return self._payload[self._offsets[index]:self._offsets[index + 1]].tobytes()


_NO_BLOBS = _Blobs([], memoryview(b""))


# -- compiling converters from type hints ------------------------------------

def _compile(entry: _Entry) -> None:
    entry.encode, entry.decode = _dataclass_converters(entry.cls, entry.name)


class _NoFastPath:
    """A type no value has: the field always goes through its converter."""


def _dataclass_converters(cls: type, label: str) -> tuple[Encoder, Decoder]:
    hints = typing.get_type_hints(cls)
    plan: list[tuple[str, type, Encoder, Any]] = []
    dplan: dict[str, tuple[type, Decoder]] = {}
    required: set[str] = set()
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        enc, dec = _converters(tp, f"{label}.{f.name}")
        # A scalar of exactly its field's type is passed as it is, both
        # ways: that is what its converter would do, minus the call. A float
        # is looked at on the way out (a non-finite one, see _scalar).
        fast = tp if tp in _SCALAR_OK else _NoFastPath
        # A field holding its plain default stays off the wire: the
        # receiver's dataclass fills it in (a default is part of the
        # protocol: changing one is a version change).
        default = f.default if f.default is not dataclasses.MISSING else _MISSING
        plan.append((f.name, _NoFastPath if tp is float else fast, enc, default))
        dplan[f.name] = (fast, dec)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.add(f.name)

    def dec(raw: Any, blobs: _Blobs) -> Any:
        if not isinstance(raw, dict):
            raise ProtocolError(f"{label}: expected an object")
        if not required <= raw.keys():
            missing = sorted(required.difference(raw))
            raise ProtocolError(f"{label}: missing field(s) {', '.join(missing)}")
        kwargs = {}
        for n, v in raw.items():
            known = dplan.get(n)
            if known is None:
                continue                # unknown keys are ignored on purpose: protocols grow
            fast, d = known
            kwargs[n] = v if type(v) is fast else d(v, blobs)
        try:
            return cls(**kwargs)
        except Exception as e:    # __post_init__ validation rejected the peer's values
            raise ProtocolError(f"{label}: {e}") from None

    return _written_encoder(cls, label, plan), dec


def _written_encoder(cls: type, label: str, plan: list[tuple[str, type, Encoder, Any]]) -> Encoder:
    """The encoder of a dataclass, written out for it as dataclasses writes
    __init__: per field, an attribute read, the default test and the fast
    path, with no loop over a plan (40 % less time, 41 fields in 3.2 us).

    For each field in turn: v = getattr(value, name); left out if v is its
    plain default (v is default, or of the default's type and equal);
    else out[name] = v if type(v) is fast else encode(v, blobs)."""
    scope: dict[str, Any] = {"cls": cls, "expected": f"{label}: expected {cls.__qualname__}"}
    lines = ["def enc(value, blobs):",
             "    if type(value) is not cls:",
             "        raise TypeError(f'{expected}, got {type(value).__qualname__}')",
             "    out = {}"]
    for i, (name, fast, enc, default) in enumerate(plan):
        scope[f"fast{i}"], scope[f"enc{i}"] = fast, enc
        store = f"out[{name!r}] = v if type(v) is fast{i} else enc{i}(v, blobs)"
        lines.append(f"    v = value.{name}")
        if default is _MISSING:
            lines.append(f"    {store}")
        else:
            scope[f"default{i}"], scope[f"type{i}"] = default, type(default)
            lines.append(f"    if not (v is default{i} or type(v) is type{i} and v == default{i}):")
            lines.append(f"        {store}")
    lines.append("    return out")
    exec("\n".join(lines) + "\n", scope)    # noqa: S102 - field names only, as dataclasses does
    return scope["enc"]


def _converters(tp: Any, label: str) -> tuple[Encoder, Decoder]:
    if tp is str or tp is int or tp is float or tp is bool:
        return _scalar(tp, label)
    if tp is bytes:
        return _bytes(label)
    if tp is type(None) or tp is None:
        return _none(label)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return _optional(*_converters(others[0], label))
    elif origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _homogeneous_tuple(*_converters(args[0], label), label)
        return _fixed_tuple([_converters(a, label) for a in args if a != ()], label)
    elif origin is dict and args and args[0] is str:
        return _dict(*_converters(args[1], label), label)
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_converters(tp, label)
    raise TypeError(f"{label}: the ipc codec cannot carry type {tp!r}")


# What each scalar field accepts, on the way out and on the way in. bool is
# an int to Python but not to the protocol; a float field accepts an int
# (a peer may well write 300 for 300.0).
_SCALAR_OK: dict[type, Callable[[Any], bool]] = {
    str: lambda v: isinstance(v, str),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    bool: lambda v: v is True or v is False,
}


def _scalar(tp: type, label: str) -> tuple[Encoder, Decoder]:
    ok = _SCALAR_OK[tp]
    want = tp.__name__
    # Subclasses (StrEnum, IntEnum) travel as their plain value. str() of a
    # (str, Enum) member is "Class.NAME": str.__str__ gives the string itself.
    plain = str.__str__ if tp is str else tp

    def enc(v: Any, blobs: list) -> Any:
        if not ok(v):
            raise TypeError(f"{label}: expected {want}, got {type(v).__qualname__}")
        if tp is float and not math.isfinite(v):
            return fastjson.NonFinite(v)        # NaN and Infinity, as JSON allows here
        return v if type(v) is tp else plain(v)

    def dec(v: Any, blobs: _Blobs) -> Any:
        if not ok(v):
            raise ProtocolError(f"{label}: expected {want}, got {type(v).__name__}")
        if tp is float and type(v) is int:
            try:
                return float(v)
            except OverflowError:
                raise ProtocolError(f"{label}: number out of range") from None
        return v

    return enc, dec


def _bytes(label: str) -> tuple[Encoder, Decoder]:
    def enc(v: Any, blobs: list) -> int:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise TypeError(f"{label}: expected bytes, got {type(v).__qualname__}")
        if isinstance(v, memoryview) and v.itemsize != 1:
            v = v.cast("B")         # lengths on the wire count bytes, not items
        blobs.append(v)
        return len(blobs) - 1

    def dec(v: Any, blobs: _Blobs) -> bytes:
        return blobs.get(v)

    return enc, dec


def _none(label: str) -> tuple[Encoder, Decoder]:
    def enc(v: Any, blobs: list) -> None:
        if v is not None:
            raise TypeError(f"{label}: expected None, got {type(v).__qualname__}")

    def dec(v: Any, blobs: _Blobs) -> None:
        if v is not None:
            raise ProtocolError(f"{label}: expected null")

    return enc, dec


def _optional(inner_enc: Encoder, inner_dec: Decoder) -> tuple[Encoder, Decoder]:
    def enc(v: Any, blobs: list) -> Any:
        return None if v is None else inner_enc(v, blobs)

    def dec(v: Any, blobs: _Blobs) -> Any:
        return None if v is None else inner_dec(v, blobs)

    return enc, dec


def _homogeneous_tuple(inner_enc: Encoder, inner_dec: Decoder, label: str) -> tuple[Encoder, Decoder]:
    def enc(v: Any, blobs: list) -> list:
        if not isinstance(v, tuple):
            raise TypeError(f"{label}: expected tuple, got {type(v).__qualname__}")
        return [inner_enc(x, blobs) for x in v]

    def dec(v: Any, blobs: _Blobs) -> tuple:
        if not isinstance(v, list):
            raise ProtocolError(f"{label}: expected an array")
        return tuple([inner_dec(x, blobs) for x in v])

    return enc, dec


def _fixed_tuple(items: list[tuple[Encoder, Decoder]], label: str) -> tuple[Encoder, Decoder]:
    n = len(items)

    def enc(v: Any, blobs: list) -> list:
        if not isinstance(v, tuple) or len(v) != n:
            raise TypeError(f"{label}: expected a tuple of {n}, got {v!r:.60}")
        return [e(x, blobs) for (e, _), x in zip(items, v)]

    def dec(v: Any, blobs: _Blobs) -> tuple:
        if not isinstance(v, list) or len(v) != n:
            raise ProtocolError(f"{label}: expected an array of {n}")
        return tuple([d(x, blobs) for (_, d), x in zip(items, v)])

    return enc, dec


def _dict(inner_enc: Encoder, inner_dec: Decoder, label: str) -> tuple[Encoder, Decoder]:
    def enc(v: Any, blobs: list) -> dict:
        if not isinstance(v, dict) or not all(type(k) is str for k in v):
            raise TypeError(f"{label}: expected dict with str keys, got {v!r:.60}")
        return {k: inner_enc(x, blobs) for k, x in v.items()}

    def dec(v: Any, blobs: _Blobs) -> dict:
        if not isinstance(v, dict):
            raise ProtocolError(f"{label}: expected an object")
        return {k: inner_dec(x, blobs) for k, x in v.items()}

    return enc, dec
