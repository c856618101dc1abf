"""char_filter - message_reject_characters and message_strip_characters (Postfix cleanup(8)).

SYNOPSIS
    chars = CharFilter.from_config(cfg)
    line = chars.rejected(content)          # the offending line, or None
    content = chars.strip(content)

DESCRIPTION
    Postfix's cleanup looks at every line of message content it receives,
    header and body (cleanup_message_headerbody(), before any header or
    body rule): a line that holds one of the message_reject_characters
    refuses the whole message, and the message_strip_characters are
    removed from every line. Both are empty by default; their values are
    written with C escapes (unescape(3) in Postfix: "\\0", "\\t", "\\177",
    "\\\\"), e.g. message_reject_characters = \\0.

    Postfix's cleanup sees content as records of at most line_length_limit
    (2048) bytes without their line end, so the line ends themselves are
    never rejected or stripped, and the text it logs is the 2048-byte piece
    that holds the character. Seen live (Postfix 3.7.11, reject = \\001):

      cleanup: QID: reject: content Subject: hello?there from
        unknown[127.0.0.1]; from=<s@example.com> to=<r@example.net>
        proto=ESMTP helo=<client.example>: 5.7.1 disallowed character
      smtpd answers: 550 5.7.1 disallowed character

    Pure: no I/O, no logging (cleanup logs the refusal with log_text()).
"""

from __future__ import annotations

import re
from typing import Any

from mailsys.frozen import frozen

from .header_checks import ContentAction
from .reply import StatusReply

__all__ = ["CharFilter", "DISALLOWED", "unescape"]

# cleanup_message.c: cleanup_act(..., "REJECT disallowed character", ...).
DISALLOWED = StatusReply(550, "5.7.1", "disallowed character")

# smtpd hands cleanup a long line in records of line_length_limit bytes.
_RECORD_SIZE = 2048

_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}


def unescape(text: str) -> bytes:
    """Postfix's unescape(): \\a \\b \\f \\n \\r \\t \\v, \\ooo (one to three
    octal digits), and \\c for any other c is c itself."""
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch != "\\" or i >= n:
            out += ch.encode("utf-8")
            continue
        ch = text[i]
        i += 1
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch in "01234567":
            value, digits = int(ch), 1
            while digits < 3 and i < n and text[i] in "01234567":
                value = value * 8 + int(text[i])
                i += 1
                digits += 1
            out.append(value & 0xFF)
        else:
            out += ch.encode("utf-8")
    return bytes(out)


def _class(chars: bytes) -> re.Pattern[bytes]:
    return re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in chars) + b"]")


@frozen
class CharFilter:
    """The two character sets, as bytes (empty: off)."""

    reject_chars: bytes = b""
    strip_chars: bytes = b""

    @classmethod
    def from_config(cls, cfg: Any) -> CharFilter:
        """from_config - the unescaped sets from message_reject_characters and
        message_strip_characters."""
        return cls(unescape(cfg["message_reject_characters"]),
                   unescape(cfg["message_strip_characters"]))

    def rejected(self, content: bytes) -> bytes | None:
        """The first record (line piece, no line end) of content that holds
        a reject character, or None."""
        if not self.reject_chars:
            return None
        for m in _class(self.reject_chars).finditer(content):
            pos = m.start()
            if _line_end(content, pos):
                continue
            start = content.rfind(b"\n", 0, pos) + 1
            piece = start + (pos - start) // _RECORD_SIZE * _RECORD_SIZE
            end = min(piece + _RECORD_SIZE, len(content))
            record = content[piece:end].split(b"\n", 1)[0]
            if record.endswith(b"\r") and _line_end(content, piece + len(record) - 1):
                record = record[:-1]
            return record
        return None

    def strip(self, content: bytes) -> bytes:
        """content without the strip characters; line ends stay."""
        chars = self.strip_chars
        if not chars:
            return content
        if b"\n" not in chars and b"\r" not in chars:
            return content.translate(None, chars)
        return _class(chars).sub(
            lambda m: m.group(0) if _line_end(content, m.start()) else b"", content)

    @staticmethod
    def action(record: bytes) -> ContentAction:
        """What cleanup logs for a rejected record: "reject: content <line> from ..."."""
        text = record.decode("utf-8", "surrogateescape")
        return ContentAction("reject", text, f"{DISALLOWED.enhanced} {DISALLOWED.text}",
                             kind="content")


def _line_end(content: bytes, pos: int) -> bool:
    """Whether the byte at pos is (part of) a line end: LF, or CR before LF."""
    ch = content[pos]
    return ch == 0x0A or ch == 0x0D and content[pos + 1:pos + 2] == b"\n"
