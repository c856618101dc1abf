"""_client_reply - reading SMTP server replies: bytes in, Response out.

The client half of the wire format RFC 5321 4.2 defines:

    Reply-line = *( Reply-code "-" [ textstring ] CRLF )
                    Reply-code [ SP textstring ] CRLF
    Reply-code = %x32-35 %x30-35 %x30-39

ReplyReader keeps the unread bytes, hands out one Response per complete
reply and never holds more than one bounded line: like Postfix's
smtp_chat_resp() (src/smtp/smtp_chat.c) a line longer than line_limit is
cut there and the rest of it skipped, non-printable characters become
``?``, and the text of a multi-line reply stops growing once it reaches
line_limit (the reply is still read to its end, so the next one stays in
step). A line that is not ``ddd``, ``ddd-text`` or ``ddd text`` with a
first digit of 2 to 5 is a RemoteProtocolError. Postfix ignores such lines
unless it pipelines; we always refuse them, because a reply stream that has
lost its framing can no longer be matched to the commands in flight, and
matching a QUIT reply to an end-of-DATA would lose mail (the XXX comment in
smtp_chat.c).

The enhanced status code (RFC 3463) is taken from the first line as Postfix
does: it counts only when its class equals the reply's first digit;
otherwise the reply has none and ``dsn`` falls back to ``X.0.0``.

A one-line reply is a function of its bytes alone, and a server says the
same few ("250 2.1.0 Ok", "354 End data ...") for every message: those
Responses (immutable) are kept in a small LRU cache, so a busy session
parses each of them once rather than once per message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from mailsys.frozen import frozen

from .errors import RemoteProtocolError
from .replies import Reply

# Postfix line_length_limit default (mail_params.h DEF_LINE_LIMIT): the
# longest server reply line smtp_chat_resp() reads before cutting it.
LINE_LIMIT = 2048

# "ddd" then "-" (more lines follow), " " or nothing (the last line).
_LINE_RE = re.compile(r"([2-5][0-9][0-9])(?:([ -])(.*))?\Z", re.S)
# dsn_valid() (src/global/dsn_util.c): class "." 1-3 digits "." 1-3 digits,
# followed by a blank or the end of the text.
_ENHANCED_RE = re.compile(r" *([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: +|\Z)")
# printable(): everything that is not a printable character becomes "?".
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f]")
# Distinct one-line replies kept parsed: a server's fixed texts, with room
# to spare for the ones that change each time ("queued as ...").
LONE_REPLY_CACHE = 256


@frozen
class Response:
    """One server reply as received.

    ``reply`` is the parsed form (code, enhanced code or None, text lines
    without the code and without a leading enhanced code); ``lines`` are the
    lines exactly as they came (made printable), which is what Postfix puts
    in logs and bounces."""

    reply: Reply
    lines: tuple[str, ...]

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def dsn(self) -> str:
        """The enhanced status code, or Postfix's ``2.0.0`` / ``4.0.0`` / ``5.0.0``."""
        return self.reply.enhanced or f"{str(self.reply.code)[0]}.0.0"

    @property
    def text(self) -> str:
        """The whole reply on one line, lines joined with a space (Postfix's form)."""
        return " ".join(self.lines)

    @property
    def closes(self) -> bool:
        """421: the server is going away (RFC 5321 3.8)."""
        return self.reply.code == 421

    def __str__(self) -> str:
        return self.text


def make_response(lines: list[str], code: int) -> Response:
    """A Response from raw reply lines (each already checked by the reader)."""
    first = lines[0][4:]
    enhanced = None
    m = _ENHANCED_RE.match(first)
    if m is not None and m.group(1)[0] == str(code)[0]:
        enhanced = m.group(1)
    texts = []
    for line in lines:
        text = line[4:]
        if enhanced is not None:
            em = _ENHANCED_RE.match(text)
            if em is not None and em.group(1) == enhanced:
                text = text[em.end():]
        texts.append(text)
    return Response(Reply(code, enhanced, tuple(texts)), tuple(lines))


def protocol_error(detail: str) -> RemoteProtocolError:
    """The server broke the reply syntax. ``reply`` is what to record for the
    recipients still in flight: a 421-class temporary failure, DSN 4.5.0."""
    return RemoteProtocolError(
        f"non-SMTP response: {detail[:100]}",
        reply=Reply(421, "4.5.0", f"Protocol error: non-SMTP response: {detail[:100]}"))


def printable_line(line: bytes) -> str:
    """A reply line as Postfix shows it: controls as "?" (printable())."""
    return _UNPRINTABLE_RE.sub("?", line.decode("utf-8", "replace"))


def _reply_line(line: bytes) -> tuple[str, int, bool]:
    """One reply line made printable: (text, code, last line of its reply)."""
    text = printable_line(line)
    m = _LINE_RE.match(text)
    if m is None:
        raise protocol_error(text)
    return text, int(m.group(1)), m.group(2) != "-"


@functools.lru_cache(maxsize=LONE_REPLY_CACHE)
def _lone_reply(line: bytes) -> Response | None:
    """The Response of a reply that is this one line; None when the line is
    the first of several (a bad line raises, and is not cached)."""
    text, code, last = _reply_line(line)
    return make_response([text], code) if last else None


class ReplyReader:
    """Bytes in, Responses out. next_reply() returns None until a reply is complete.

    line_filter (smtp_reply_filter) sees each line as the server sent it,
    without CR LF, and may return a line to read in its place (None: keep
    it); the replacement is what is parsed, logged and reported."""

    __slots__ = ("_buf", "_limit", "_lines", "_size", "_skipping", "_filter")

    def __init__(self, line_limit: int = LINE_LIMIT,
                 line_filter: Callable[[str], str | None] | None = None) -> None:
        self._filter = line_filter
        self._buf = bytearray()
        self._limit = line_limit
        self._lines: list[str] = []      # lines of the reply being read
        self._size = 0                   # characters kept of it so far
        self._skipping = False           # inside the cut-off rest of a long line

    def feed(self, data: bytes | bytearray) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_reply(self) -> Response | None:
        while True:
            line = self._take_line()
            if line is None:
                return None
            if self._filter is not None:
                new = self._filter(line.decode("utf-8", "replace"))
                if new is not None:
                    line = new.encode("utf-8")[:self._limit]
            if not self._lines:
                response = _lone_reply(line)
                if response is not None:
                    return response
            text, code, last = _reply_line(line)
            if self._size < self._limit:
                self._lines.append(text)
                self._size += len(text) + 1
            if last:
                lines, self._lines, self._size = self._lines, [], 0
                # As in Postfix the code is the last line's, even when the
                # text limit kept that line out of the text.
                return make_response(lines, code)

    def _take_line(self) -> bytes | None:
        buf = self._buf
        while True:
            nl = buf.find(b"\n")
            if self._skipping:
                if nl < 0:
                    buf.clear()
                    return None
                del buf[:nl + 1]
                self._skipping = False
                continue
            if nl < 0:
                if len(buf) > self._limit:
                    line = bytes(buf[:self._limit])
                    del buf[:]
                    self._skipping = True
                    return line
                return None
            line = bytes(buf[:nl])
            del buf[:nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > self._limit:
                line = line[:self._limit]
            return line

