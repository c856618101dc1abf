"""jsonl - render a log event as one line of mail.json.

SYNOPSIS
    render(event, host[, text]) -> str    # one JSON object, no newline

DESCRIPTION
    mail.json holds the same events as mail.log, one JSON object per line,
    for machines. Keys, always in this order:

        ts        ISO-8601 UTC with microseconds: "2026-11-27T00:21:40.123456Z"
        host      myhostname, in full ("mx.example.com")
        tag       "mailsys/smtpd", "mailsys/submission/smtpd"
        service   the program: the last component of the tag ("smtpd")
        pid       process ID of the logger
        level     debug | info | warning | error | fatal | panic
        queue_id  the queue ID, or null
        event     the text of a text event, or the name of a named event
        fields    every other key the caller logged, as given (JSON types)
        text      the rendered mail.log text after "tag[pid]: " (severity,
                  queue ID and text), so that no reader has to re-render it
    and, only when present:
        noqueue   true
        exception the formatted traceback, newlines included

    The line is compact UTF-8 JSON (no spaces after "," and ":"; non-ASCII
    is written as is). JSON escapes every C0 control character; NEL, LINE
    SEPARATOR and PARAGRAPH SEPARATOR, which JSON allows raw but
    splitlines() breaks at, are escaped too, so a client cannot break a
    line here either.
"""

from __future__ import annotations

import datetime
import json
import math

from mailsys import fastjson
from mailsys.maillog import postfix
from mailsys.maillog.event import LogEvent


def timestamp(when: float) -> str:
    """ISO-8601 UTC with microseconds and a Z."""
    global _last_second
    # datetime and strftime() are most of the cost and a busy log repeats
    # the same second: keep its text, and round the microseconds as
    # datetime.fromtimestamp() does (half to even), unless they carry into
    # the next second.
    fraction, whole = math.modf(when)
    micro = round(fraction * 1e6)
    if when >= 0 and micro < 1_000_000:
        second = int(whole)
        key, head = _last_second
        if key != second:
            head = datetime.datetime.fromtimestamp(second, tz=datetime.timezone.utc).strftime(
                _ISO_SECOND)
            _last_second = (second, head)
        return f"{head}{micro:06d}Z"
    dt = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return f"{dt.strftime(_ISO_SECOND)}{dt.microsecond:06d}Z"


_ISO_SECOND = "%Y-%m-%dT%H:%M:%S."
_last_second: tuple[int, str] = (-1, "")


def render(event: LogEvent, host: str, text: str | None = None) -> str:
    """The mail.json line for an event, without the newline.
    text: postfix.message(event), when the caller has it already."""
    record = {
        "ts": timestamp(event.time),
        "host": host,
        "tag": event.tag,
        "service": _programs.get(event.tag) or _program(event),
        "pid": event.pid,
        "level": event.level,
        "queue_id": event.queue_id,
        "event": event.event,
        "fields": fields if type(fields := event.fields) is dict else dict(fields),
        "text": postfix.message(event) if text is None else text,
    }
    if event.noqueue:
        record["noqueue"] = True
    if event.exception:
        record["exception"] = event.exception
    line = fastjson.dumps(record, _dumps_slow, default=str).decode("utf-8", "surrogatepass")
    # JSON leaves these unescaped, but str.splitlines() and some editors
    # break lines at them. Almost every line is ASCII and has none of
    # them: isascii() is one C pass, translate() a dict lookup per character.
    if line.isascii():
        return line
    return line.translate(_LINE_BREAKS)


def _program(event: LogEvent) -> str:
    # A handful of tags, one per program: split each once.
    if len(_programs) >= 1024:
        _programs.clear()
    program = _programs[event.tag] = event.program
    return program


_programs: dict[str, str] = {}

# The reference encoding (mailsys.fastjson), built once: json.dumps() with
# arguments builds a new encoder per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _dumps_slow(record: object) -> bytes:
    return _ENCODER.encode(record).encode("utf-8", "surrogatepass")


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
