"""event - one log event as it travels from a process to postlogd.

SYNOPSIS
    ev = LogEvent.from_event_dict(event_dict, tag="mailsys/smtpd", pid=9621)
    datagram = ev.encode()                  # bytes, one JSON object, no newline
    ev = LogEvent.decode(datagram)          # ValueError when it is not one

DESCRIPTION
    structlog hands the final processor a flat dict in which the event name,
    the level, the timestamp, the queue ID and the caller's own fields sit
    side by side. LogEvent separates them once, so that the renderers
    (mailsys.maillog.postfix, mailsys.maillog.jsonl) never have to guess
    which key is a field and which is ours, and so that a caller's field
    named ``service`` or ``pid`` cannot overwrite the process identity.

    Reserved keys of the event dict: ``event`` (the text, or the name of a
    named event), ``level``, ``timestamp`` (seconds since the epoch),
    ``queue_id``, ``noqueue`` (render ``NOQUEUE: ``), ``exception`` (a
    formatted traceback) and ``stack``. Every other key is a field.

    Text that came from outside (a client's bytes, an undecodable file name)
    is made valid Unicode here, once: bytes are decoded as UTF-8, and every
    byte that is not valid UTF-8 becomes the four characters ``\\ooo`` (its
    octal value), as Postfix writes such bytes. After that the datagram, the
    JSON line and the Postfix line can always be encoded as UTF-8. Control
    characters are left alone here; each renderer deals with them.

    The wire form is one JSON object with the keys of LogEvent; ``v`` is the
    format version. Unknown keys are ignored, missing or mistyped ones make
    decode() raise ValueError. It never holds a raw newline (JSON escapes
    every control character), so a datagram can carry several events, one
    per line (mailsys.maillog.writer, mailsys.maillog.sink).
"""

from __future__ import annotations

import json
import math
import re
import time as _clock
from dataclasses import field
from typing import Any, Mapping

from mailsys import fastjson
from mailsys.frozen import frozen

WIRE_VERSION = 1

# structlog method names -> the Postfix severity they are logged with.
# Postfix has info, warning, error, fatal and panic; "debug" stays "debug"
# in mail.json and renders like info in mail.log, as Postfix's verbose
# logging does.
_LEVELS = {
    "debug": "debug",
    "info": "info",
    "msg": "info",
    "notice": "info",
    "warn": "warning",
    "warning": "warning",
    "err": "error",
    "error": "error",
    "exception": "error",
    "failure": "error",
    "critical": "fatal",
    "fatal": "fatal",
    "panic": "panic",
}

# The only way a surrogate gets into text that json.loads() returns from
# valid UTF-8: a \uD800-\uDFFF escape. Without one, decode() can skip
# cleaning every string again (a false hit just takes the careful path).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _nonfinite(constant: str) -> str:
    """NaN / Infinity / -Infinity in a datagram: text, as clean_value makes them."""
    return str(float(constant))


# Built once: json.dumps() / json.loads() with any non-default argument
# build a new encoder / decoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_DECODER = json.JSONDecoder(parse_constant=_nonfinite)


def _dumps_slow(wire: object) -> bytes:
    return _ENCODER.encode(wire).encode("utf-8")


def _loads_slow(datagram: bytes) -> Any:
    body = datagram.decode("utf-8")
    if body.startswith("\ufeff"):      # as json.loads() refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
    return _DECODER.decode(body)


_NUMBER = (int, float)

_RESERVED = frozenset({"event", "level", "timestamp", "queue_id", "noqueue",
                       "exception", "stack", "exc_info", "stack_info"})


def normalize_level(name: str) -> str:
    """Map a structlog method or level name to a Postfix severity."""
    if type(name) is str and name in _LEVELS:
        return _LEVELS[name]          # the common case: a lower-case method name
    return _LEVELS.get(str(name).lower(), "info")


def clean_text(value: Any) -> str:
    """Valid Unicode for any text: each byte that is not UTF-8 becomes ``?``.

    As Postfix's printable() masks each byte of invalid UTF-8 in a log
    line, so that mail.log shows ``to=<??@x>`` for a client's ``\\xff\\xfe@x``
    whatever smtputf8_enable says; mail.json gets the same text."""
    if type(value) is str and value.isascii():
        return value                  # the common case: nothing to check
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "surrogateescape")
    elif not isinstance(value, str):
        value = str(value)
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    return _SURROGATES.sub(_masked_bytes, value)


# A byte smuggled by surrogateescape (U+DC80..U+DCFF) is one byte; any other
# lone surrogate stands for the three bytes of its CESU encoding.
_SURROGATES = re.compile("[\ud800-\udfff]")


def _masked_bytes(match: re.Match[str]) -> str:
    return "?" if "\udc80" <= match.group() <= "\udcff" else "???"


def clean_value(value: Any) -> Any:
    """A JSON-safe copy of a field value; unknown objects become str()."""
    if type(value) is str and value.isascii():
        return value                  # the common case: nothing to check
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)   # JSON has no NaN
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean_value(v) for v in value]
    return clean_text(value)


@frozen
class LogEvent:
    """One event: who logged it, when, how severe, about which message."""

    time: float                      # seconds since the epoch
    tag: str                         # "mailsys/smtpd", "mailsys/submission/smtpd"
    pid: int
    level: str                       # debug | info | warning | error | fatal | panic
    event: str                       # text, or the name of a named event
    queue_id: str | None = None
    noqueue: bool = False            # render "NOQUEUE: " when there is no queue_id
    fields: Mapping[str, Any] = field(default_factory=dict)
    exception: str | None = None     # formatted traceback, lines separated by "\n"

    @property
    def program(self) -> str:
        """The program name: the last component of the tag ("smtpd")."""
        return self.tag.rsplit("/", 1)[-1]

    @classmethod
    def from_event_dict(cls, event_dict: Mapping[str, Any], *, tag: str, pid: int,
                        now: float | None = None) -> "LogEvent":
        """Split a structlog event dict into identity, fields and text."""
        fields = {}
        for k, v in event_dict.items():
            if k in _RESERVED:
                continue
            # Keyword names and most values are plain ASCII text or ints:
            # nothing for clean_text / clean_value to change.
            if not (type(v) is str and v.isascii() or type(v) is int or v is None):
                v = clean_value(v)
            fields[k if type(k) is str and k.isascii() else clean_text(k)] = v
        get = event_dict.get
        qid = get("queue_id")
        exception = get("exception")
        stack = get("stack")
        if stack:
            exception = f"{exception}\n{stack}" if exception else stack
        stamp = get("timestamp", now)
        if type(stamp) is not float and (not isinstance(stamp, (int, float))
                                         or isinstance(stamp, bool)):
            stamp = _clock.time()
        name = get("event", "")
        level = get("level", "info")
        return LogEvent(float(stamp),
                        tag if type(tag) is str and tag.isascii() else clean_text(tag),
                        pid if type(pid) is int else int(pid),
                        type(level) is str and _LEVELS.get(level) or normalize_level(level),
                        name if type(name) is str and name.isascii() else clean_text(name),
                        (qid if type(qid) is str and qid.isascii() else clean_text(qid)) if qid
                        else None,
                        bool(get("noqueue", False)), fields,
                        clean_text(exception) if exception else None)

    def encode(self) -> bytes:
        """The datagram: one UTF-8 JSON object."""
        wire = {"v": WIRE_VERSION, "time": self.time, "tag": self.tag,
                "pid": self.pid, "level": self.level, "event": self.event,
                "fields": self.fields}
        if self.queue_id:
            wire["queue_id"] = self.queue_id
        if self.noqueue:
            wire["noqueue"] = True
        if self.exception:
            wire["exception"] = self.exception
        return fastjson.dumps(wire, _dumps_slow, default=str)

    @classmethod
    def decode(cls, datagram: bytes) -> "LogEvent":
        """Parse a datagram made by encode(); ValueError if it is not one."""
        try:
            wire = fastjson.loads(datagram, _loads_slow)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"not a log event: {e}") from None
        if type(wire) is not dict:
            raise ValueError("not a log event: not a JSON object")
        get = wire.get
        stamp, tag, pid, level, name = (get("time"), get("tag"), get("pid"), get("level"),
                                        get("event"))
        fields = get("fields", {})
        # json.loads() makes exact types; one check of all for the common case.
        if not (type(stamp) in _NUMBER and type(pid) is int and type(tag) is str
                and type(level) is str and type(name) is str and type(fields) is dict):
            _need(wire, "time", (int, float))
            _need(wire, "tag", str)
            _need(wire, "pid", int)
            _need(wire, "level", str)
            _need(wire, "event", str)
            raise ValueError("not a log event: fields is not an object")
        qid = get("queue_id")
        exception = get("exception")
        # JSON can carry lone surrogates ("\\udc80"); clean again so that
        # every rendering encodes, whoever sent the datagram. Without a
        # surrogate escape every string is valid Unicode already and every
        # value a JSON value (non-finite numbers became text above), so
        # there is nothing for clean_text / clean_value to change.
        if b"\\u" in datagram and _SURROGATE_ESCAPE.search(datagram):
            tag, name, fields = clean_text(tag), clean_text(name), clean_value(fields)
            if qid and type(qid) is str:
                qid = clean_text(qid)
            if exception and type(exception) is str:
                exception = clean_text(exception)
        return LogEvent(stamp if type(stamp) is float else float(stamp), tag, pid,
                        _LEVELS.get(level) or normalize_level(level), name,
                        qid if qid and type(qid) is str else None,
                        get("noqueue") is True, fields,
                        exception if exception and type(exception) is str else None)


def _need(wire: dict, key: str, kind: type | tuple[type, ...]) -> None:
    value = wire.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"not a log event: bad or missing {key!r}")
