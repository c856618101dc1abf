"""postfix - render a log event as a Postfix mail.log line.

SYNOPSIS
    render(event, host[, utf8]) -> str        # one line, no newline
    render_lines(event, host[, text, utf8]) -> list[str]   # plus traceback lines
    message(event[, utf8]) -> str             # the part after "tag[pid]: "
    format_tv(sec, usec) -> str               # Postfix's delay numbers
    format_delay(seconds) -> str
    set_delay_resolution(decimals)            # delay_logging_resolution_limit
    printable(text[, utf8]) -> str            # non-printable characters as "?"
    escape(data) -> str                       # C escapes, for text Postfix escapes

DESCRIPTION
    A line is what Postfix's postlogd writes (src/util/msg_logger.c):

        Nov 07 00:21:40 mx mailsys/qmgr[9579]: 1C0BF20E25F: from=<a@b>, size=317, nrcpt=1 (queue active)

    the local time as strftime("%b %d %H:%M:%S ") with a zero-padded day
    and English month names whatever the locale, the first label of
    myhostname, the tag and pid, then ``warning: ``, ``error: ``, ``fatal:
    `` or ``panic: `` for those severities, then ``QID: `` when the event
    has a queue ID (``NOQUEUE: `` when it says noqueue=True), then the text.

    A text event renders as its text. A named event (a key of FORMATS)
    renders its fields through one small function, in exactly the order
    Postfix prints them, because pflogsumm and fail2ban parse these lines
    with fixed regular expressions (postfix-compat.md 4.6, 4.7):

      opened        sender, size, nrcpt, [queue="active"]
                    from=<s>, size=N, nrcpt=N (queue active)
      status        to, [orig_to], relay, [conn_use], delay, delays, dsn, status, reason
      delivered     the same (status defaults to "sent"):
                    to=<r>, [orig_to=<o>, ]relay=R, [conn_use=N, ]delay=D, delays=a/b/c/d, dsn=X.Y.Z, status=S (reason)
      expired       sender, [status="expired"]
                    from=<s>, status=expired, returned to sender
      removed       removed
      client        client, [sasl_method], [sasl_username], [sasl_sender], [orig_queue_id],
                    [orig_client]
                    client=name[addr][, sasl_method=M][, sasl_username=U][, sasl_sender=S]
                    [, orig_queue_id=Q][, orig_client=name[addr]] (the last two after XFORWARD)
      message-id    message_id (as in the header, "" when there was none)
                    message-id=<id>
      pickup        uid, sender, [orig_id]
                    uid=N from=<s>[ orig_id=QID]
      notification  kind ("sender non-delivery", "sender delay", ...), notice_id
                    sender non-delivery notification: QID
      connect       client                  connect from name[addr]
      disconnect    client, [stats]         disconnect from name[addr] ehlo=1 ... commands=5
      reject        command, client, reply, [sender], [recipient], [proto], [helo],
                    [action="reject"], [sasl_method], [sasl_username]
                    reject: RCPT from c[a]: 554 5.7.1 <r>: Relay access denied; from=<s> to=<r> proto=ESMTP helo=<h>
                    (a milter-* action adds " sasl_username=<u>", as the proxy
                    event does; a restriction reject names no SASL login)

    ``delay`` and each of the four ``delays`` are seconds (int or float) and
    print with format_delay(): 2 significant digits, at most
    delay_logging_resolution_limit decimals (default 2), rounded half up,
    trailing zeros dropped, integers from 10 s on (Postfix
    src/util/format_tv.c, as src/global/log_adhoc.c calls it).
    ``orig_to`` prints only when it differs from ``to`` other than in case
    (src/global/log_adhoc.c), ``conn_use`` only from 2 on. ``reason``
    (remote replies may have several lines) has its line breaks turned
    into spaces, as Postfix does. A named event whose fields do not fit
    its format is not lost: it renders as its name followed by
    `` key=value`` pairs. The fields of a text event appear only
    in mail.json: put what a person must read into the text.

ESCAPING
    Nothing that came from a client can break or forge a line. As in
    Postfix, where msg_text() passes every formatted line through
    printable(line, '?') (src/util/msg_output.c, src/util/printable.c),
    the whole text after ``tag[pid]: `` (severity, queue ID and text) and
    the tag go through printable(): printable ASCII is kept, every ASCII
    control character (C0 and DEL, so CR, LF and TAB too) becomes ``?``.
    Non-ASCII text depends on smtputf8_enable, which sets Postfix's
    util_utf8_enable: with yes, valid UTF-8 is kept as it is (also C1
    controls and U+2028, which are not line breaks to the tools that read
    mail.log byte by byte); with no, each byte of it becomes ``?``
    (``é`` shows as ``??``). A byte that is not valid UTF-8 arrives here
    already as ``?`` (mailsys.maillog.event.clean_text), as Postfix shows
    it in either mode.

    Where Postfix logs client text escaped rather than masked (smtpd's
    "improper command pipelining" and "non-SMTP command" lines), the caller
    runs it through escape() first, Postfix's escape() (src/util/escape.c):
    backslash doubled, BEL BS TAB LF VT FF CR as ``\\a \\b \\t \\n \\v
    \\f \\r``, every other byte that is not printable ASCII as ``\\ooo``.
    Its result is printable ASCII, so printable() leaves it alone.

TRACEBACKS
    Postfix logs one line per line. An event carrying a traceback (logged
    with exc_info, or log.exception) renders as its own line followed by
    one line per traceback line, each with the same prefix (time, host,
    tag, severity, queue ID), so ``grep`` and ``mailsys log --id`` keep the
    block together. The writers append the whole block with one write.
    mail.json carries the traceback once, in the ``exception`` key.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable, Mapping, Sequence

from mailsys.maillog.event import LogEvent
from mailsys.message.address import unquote_822_local

LEVEL_PREFIX = {"warning": "warning: ", "error": "error: ",
                "fatal": "fatal: ", "panic": "panic: "}

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_C_ESCAPES = {0x07: "\\a", 0x08: "\\b", 0x09: "\\t", 0x0A: "\\n",
              0x0B: "\\v", 0x0C: "\\f", 0x0D: "\\r", 0x5C: "\\\\"}
# Postfix escape(): printable ASCII as it is (backslash doubled), the C
# escapes above, every other byte as three octal digits.
_ESCAPE_BYTE = tuple(_C_ESCAPES.get(b, chr(b) if 0x20 <= b < 0x7F else "\\%03o" % b)
                     for b in range(256))

# printable(): ASCII controls (and lone surrogates, which are no UTF-8)
# always; with utf8 off, everything outside printable ASCII.
_ASCII_CONTROLS = {c: "?" for c in (*range(0x20), 0x7F)}
_NOT_PRINTABLE_UTF8 = re.compile("[\x00-\x1f\x7f\ud800-\udfff]+")
_NOT_PRINTABLE_ASCII = re.compile("[^\x20-\x7e]+")


def _masked(match: re.Match[str]) -> str:
    # One "?" per byte, as printable() works on the bytes: a byte that is no
    # UTF-8, kept as a surrogateescape'd character, is one byte (Postfix
    # 3.7.11 wrote "Received: from ?" for HELO \xfc).
    text = match.group()
    try:
        return "?" * len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return "?" * len(text.encode("utf-8", "surrogatepass"))


def printable(text: str, utf8: bool = True) -> str:
    """Postfix printable(text, '?'): text safe for one log line.
    utf8: smtputf8_enable, whether valid non-ASCII UTF-8 is kept."""
    if text.isascii():
        return text if text.isprintable() else text.translate(_ASCII_CONTROLS)
    pattern = _NOT_PRINTABLE_UTF8 if utf8 else _NOT_PRINTABLE_ASCII
    return pattern.sub(_masked, text)


def escape(data: bytes | str) -> str:
    """Postfix escape(): C escapes for text that Postfix logs escaped.
    A str is escaped as its UTF-8 bytes (surrogateescape'd bytes as they were)."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:          # a surrogate no decoder smuggled in
            data = data.encode("utf-8", "surrogatepass")
    return "".join([_ESCAPE_BYTE[b] for b in data])


# --- numbers ---------------------------------------------------------------

MILLION = 1_000_000


def format_tv(sec: int, usec: int, sig_dig: int = 2, max_dig: int = 2) -> str:
    """Postfix format_tv(): sec.usec with sig_dig significant digits, at most
    max_dig decimals, rounded half up, trailing zeros dropped."""
    if not (0 <= max_dig <= 6 and 1 <= sig_dig <= 6):
        raise ValueError("format_tv: digit counts out of range")
    if sec < 0 or usec < 0:
        sec, usec = 0, 0                  # a clock step backwards is not a negative delay
    sec += usec // MILLION
    usec %= MILLION
    resolution = MILLION // 10 ** max_dig   # smallest unit that may print
    width = 10 ** sig_dig
    if resolution < MILLION:
        if sec > 0:
            # Each integer digit costs one significant digit of the fraction.
            n = 1
            while sec >= n and n <= width // 10:
                n *= 10
            resolution = (MILLION // width) * n
        else:
            # Leading fraction zeros do not count as significant.
            while usec >= width * resolution:
                resolution *= 10
    if resolution > 1:
        usec += resolution // 2
        if usec >= MILLION:
            sec += 1
            usec -= MILLION
    text = str(sec)
    if usec >= resolution:
        digits = []
        rem, unit = usec, MILLION // 10
        while rem >= resolution and unit > 0:
            digits.append(str(rem // unit))
            rem %= unit
            unit //= 10
        text += "." + "".join(digits)
    return text


# delay_logging_resolution_limit: the most decimals delay= and delays= show.
_delay_decimals = 2


def set_delay_resolution(decimals: int) -> None:
    """delay_logging_resolution_limit for this process's lines; once, at start-up."""
    global _delay_decimals
    _delay_decimals = min(6, max(0, int(decimals)))


def format_delay(seconds: float) -> str:
    """A delay in seconds as Postfix prints it in delay= and delays=
    (log_adhoc.c: format_tv() with 2 significant digits and at most
    delay_logging_resolution_limit decimals)."""
    total = round(float(seconds) * MILLION)
    if total < 0:
        total = 0
    if _delay_decimals != 2:
        return format_tv(total // MILLION, total % MILLION, 2, _delay_decimals)
    return _delay_text(total)


def _delay_text(total: int) -> str:
    """format_tv(total // MILLION, total % MILLION) for the default 2 and 2
    digits, worked out once: five of these per delivery line, and
    format_tv()'s loops were most of postlogd's cost for it. Two decimals
    below 1 s, one below 10 s, none from 10 s on; rounded half up (a carry
    into the next second keeps the resolution chosen before it)."""
    sec, usec = divmod(total, MILLION)
    resolution = 10_000 if sec == 0 else 100_000 if sec < 10 else MILLION
    usec += resolution >> 1
    if usec >= MILLION:
        sec += 1
        usec -= MILLION
    units = usec // resolution
    if not units:
        return str(sec)
    if resolution == 100_000 or units % 10 == 0:
        return f"{sec}.{units if resolution == 100_000 else units // 10}"
    return f"{sec}.{units:02d}"


# --- named events ----------------------------------------------------------

def _e(value: Any) -> str:
    # Raw text: message() masks the whole line at once, as msg_text() does.
    return str(value)


# info_log_address_format = internal: addresses in from=<>, to=<> and
# orig_to=<> unquoted, as before Postfix 3.5 (from=<a b@example.com>);
# external (the default) leaves them as queued (from=<"a b"@example.com>).
_internal_form = False


def set_address_form(form: str) -> None:
    """info_log_address_format for this process's lines; once, at start-up."""
    global _internal_form
    _internal_form = form == "internal"


def _addr(value: Any) -> str:
    text = _e(value if value is not None else "")
    return f"<{unquote_822_local(text) if _internal_form else text}>"


def _one_line(text: Any) -> str:
    # Remote replies may span lines; Postfix joins them with spaces.
    text = str(text)
    if "\n" not in text and "\r" not in text:
        return text               # the common case: one line already
    return _LINE_BREAK.sub(" ", text)


_LINE_BREAK = re.compile(r"\r?\n|\r")


def _opened(f: Mapping[str, Any]) -> str:
    return (f"from={_addr(f['sender'])}, size={int(f['size'])}, "
            f"nrcpt={int(f['nrcpt'])} (queue {_e(f.get('queue', 'active'))})")


def _status(f: Mapping[str, Any], default_status: str | None = None) -> str:
    to = f["to"]
    parts = [f"to={_addr(to)}"]
    orig_to = f.get("orig_to")
    # log_adhoc.c: orig_to= only when it differs other than in case
    # (strcasecmp_utf8()): "Bob@Example.com" delivered as bob@example.com
    # logs no orig_to=.
    if orig_to and orig_to != to and str(orig_to).casefold() != str(to).casefold():
        parts.append(f"orig_to={_addr(orig_to)}")
    parts.append(f"relay={_e(f['relay'])}")
    conn_use = f.get("conn_use")
    if conn_use and int(conn_use) >= 2:
        parts.append(f"conn_use={int(conn_use)}")
    parts.append(f"delay={format_delay(f['delay'])}")
    delays: Sequence[Any] = f["delays"]
    if isinstance(delays, (str, bytes)) or len(delays) != 4:
        raise ValueError("delays must be four numbers")
    parts.append("delays=" + "/".join(format_delay(d) for d in delays))
    parts.append(f"dsn={_e(f['dsn'])}")
    status = f.get("status", default_status)
    if status is None:
        raise KeyError("status")
    parts.append(f"status={_e(status)} ({_one_line(f.get('reason', ''))})")
    return ", ".join(parts)


def _expired(f: Mapping[str, Any]) -> str:
    return f"from={_addr(f['sender'])}, status={_e(f.get('status', 'expired'))}, returned to sender"


def _client(f: Mapping[str, Any]) -> str:
    text = f"client={_e(f['client'])}"
    for key in ("sasl_method", "sasl_username", "sasl_sender", "orig_queue_id", "orig_client"):
        if f.get(key):
            text += f", {key}={_e(f[key])}"
    return text


def _message_id(f: Mapping[str, Any]) -> str:
    mid = str(f.get("message_id") or "").strip()
    if not (mid.startswith("<") and mid.endswith(">")):
        mid = f"<{mid}>"
    return f"message-id={mid}"


def _pickup(f: Mapping[str, Any]) -> str:
    text = f"uid={int(f['uid'])} from={_addr(f['sender'])}"
    if f.get("orig_id"):
        text += f" orig_id={_e(f['orig_id'])}"       # a message postsuper -r requeued
    return text


def _notification(f: Mapping[str, Any]) -> str:
    return f"{_e(f['kind'])} notification: {_e(f['notice_id'])}"


def _connect(f: Mapping[str, Any]) -> str:
    return f"connect from {_e(f['client'])}"


def _disconnect(f: Mapping[str, Any]) -> str:
    stats = f.get("stats")
    return f"disconnect from {_e(f['client'])}" + (f" {_e(stats)}" if stats else "")


def _reject(f: Mapping[str, Any]) -> str:
    action = str(f.get("action", "reject"))
    # smtpd's milter verdicts go through smtpd.c smtpd_whatsup(), which
    # names the SASL login; its restriction rejects through smtpd_check.c
    # log_whatsup(), which does not (Postfix 3.7.11).
    return (f"{_e(action)}: {_e(f['command'])} from {_e(f['client'])}: "
            f"{_one_line(f['reply'])};" + _whatsup(f, sasl=action.startswith("milter-")))


def _proxy(f: Mapping[str, Any]) -> str:
    # smtpd.c data_cmd: the before-queue filter's answer to the end of the
    # message, "proxy-accept: END-OF-MESSAGE: 250 ...; from=<a> to=<b> ...".
    return (f"proxy-{_e(f['result'])}: {_e(f['command'])}: {_one_line(f['reply'])};"
            + _whatsup(f, sasl=True))


def _whatsup(f: Mapping[str, Any], sasl: bool) -> str:
    """smtpd_check.c log_whatsup(): " from=<s> to=<r> proto=P helo=<h>",
    each when known; with sasl, smtpd.c smtpd_whatsup(), which adds
    " sasl_username=<u>" after a successful AUTH. sasl_method is in the
    event for mail.json only: Postfix 3.7 logs it on no such line."""
    text = ""
    if f.get("sender") is not None:
        text += f" from={_addr(f['sender'])}"
    if f.get("recipient") is not None:
        text += f" to={_addr(f['recipient'])}"
    if f.get("proto"):
        text += f" proto={_e(f['proto'])}"
    if f.get("helo") is not None:
        text += f" helo={_addr(f['helo'])}"
    if sasl and f.get("sasl_username"):
        text += f" sasl_username=<{_e(f['sasl_username'])}>"
    return text


FORMATS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "opened": _opened,
    "status": _status,
    "delivered": lambda f: _status(f, default_status="sent"),
    "expired": _expired,
    "removed": lambda f: "removed",
    "client": _client,
    "message-id": _message_id,
    "pickup": _pickup,
    "notification": _notification,
    "connect": _connect,
    "disconnect": _disconnect,
    "reject": _reject,
    "proxy": _proxy,
}


def text(event: LogEvent) -> str:
    """The event's own text, not yet masked: a named event through FORMATS."""
    fmt = FORMATS.get(event.event)
    if fmt is None:
        return event.event
    try:
        return fmt(event.fields)
    except (KeyError, TypeError, ValueError, OverflowError):
        # A named event with fields that do not fit: keep every field
        # rather than lose the event or crash the process that logs it.
        pairs = "".join(f" {_e(k)}={_e(v)}" for k, v in event.fields.items())
        return event.event + pairs


def _prefix(event: LogEvent) -> str:
    prefix = LEVEL_PREFIX.get(event.level, "")
    if event.queue_id:
        prefix += event.queue_id + ": "
    elif event.noqueue:
        prefix += "NOQUEUE: "
    return prefix


def message(event: LogEvent, utf8: bool = True) -> str:
    """Everything after ``tag[pid]: ``: severity, queue ID and text, through
    printable(). utf8: smtputf8_enable."""
    return printable(_prefix(event) + text(event), utf8)


def stamp(when: float) -> str:
    """``Nov 07 00:21:40 `` in local time, English month whatever the locale."""
    global _last_stamp
    # localtime() truncates to the second, and a busy log repeats the same
    # second: keep the last one (time.tzset() makes a new time.tzname, so
    # a changed zone is noticed).
    second = math.floor(when)
    key, zone, text = _last_stamp
    if key == second and zone is time.tzname:
        return text
    zone = time.tzname
    tm = time.localtime(second)
    text = (f"{_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:02d} "
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} ")
    _last_stamp = (second, zone, text)
    return text


_last_stamp: tuple[int, tuple[str, str] | None, str] = (-1, None, "")


def short_host(myhostname: str) -> str:
    """The host column: the first label of myhostname, as Postfix writes it."""
    return printable(myhostname.split(".", 1)[0] or "localhost")


def _head(event: LogEvent, host: str, utf8: bool) -> str:
    key = (host, event.tag, event.pid, utf8)
    ident = _idents.get(key)
    if ident is None:
        # "host tag[pid]: " is the same for every line of a process.
        if len(_idents) >= 1024:
            _idents.clear()
        ident = _idents[key] = f"{host} {printable(event.tag, utf8)}[{event.pid}]: "
    return stamp(event.time) + ident


_idents: dict[tuple[str, str, int, bool], str] = {}


def render(event: LogEvent, host: str, utf8: bool = True) -> str:
    """The mail.log line for an event (host as from short_host()), no newline.
    utf8: smtputf8_enable (see ESCAPING)."""
    return _head(event, host, utf8) + message(event, utf8)


def render_lines(event: LogEvent, host: str, text: str | None = None,
                 utf8: bool = True) -> list[str]:
    """The event's line, then one line per traceback line, same prefix.
    text: message(event, utf8), when the caller has it already."""
    head = _head(event, host, utf8)
    lines = [head + (message(event, utf8) if text is None else text)]
    if event.exception:
        prefix = head + printable(_prefix(event), utf8)
        lines.extend(prefix + printable(line, utf8)
                     for line in event.exception.split("\n") if line)
    return lines
