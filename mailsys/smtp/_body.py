"""_body - the DATA reader: the one place that decides where a message ends.

RFC 5321 4.1.1.4: the body ends with ``<CRLF>.<CRLF>``. Only that sequence
ends it here, whatever smtpd_forbid_bare_newline says: ``<LF>.<LF>``,
``<CR>.<CR>``, ``<LF>.<CR><LF>``, ``<CR><LF>.<LF>`` and every other mix are
content, so an SMTP smuggling attempt stays inside one message (Postfix 3.9
semantics, CVE-2023-51764). A line that starts with ``.`` loses that dot
(RFC 5321 4.5.2; Postfix removes a leading dot whatever follows it).

Bare LF (an LF without CR before it), by smtpd_forbid_bare_newline:
  normalize  taken as a line end: it becomes CRLF in the content and a dot
             after it is unstuffed; never part of the terminator;
  reject     content kept as sent, the message is refused at the end;
  no         content kept as sent.

Speed: the reader works on whole buffers with C loops (a regex search,
bytes.translate / replace / count); there is no per-line Python code. A
first search looks for an LF that is bare or starts a line with a dot
(mailsys.message.headers.bare_lf_or_dot): in the usual buffer it finds
the terminator, or nothing, and that one pass says there is neither a
bare LF nor a line to unstuff before it (64 KiB: 47 us, against 117 for
the passes below). Otherwise the slow way: one search for a dot at a line
start finds both the terminator and whether any line needs unstuffing,
and the bare LF check looks at the line ends alone (bytes.translate keeps
CR and LF) plus one search for a bare CR, instead of counting LF and CRLF
over the whole buffer. A short tail (at most 4 bytes) that could begin a
terminator or a CRLF is kept back until more data arrives. The body is
read to the end even after the size limit is passed (Postfix reads and
discards, then answers 552), but nothing more is handed out.
"""

from __future__ import annotations

import re

from mailsys.message.headers import bare_lf_or_dot, has_bare_lf

_TERMINATOR = b"\r\n.\r\n"
# Where a dot may start a line: after CRLF, or after any LF when a bare LF
# is a line end (normalize). The terminator is found among the same hits.
_DOT_AFTER_CRLF = re.compile(rb"\r\n\.").search
_DOT_AFTER_LF = re.compile(rb"\n\.").search


class DataReader:
    """Turns raw DATA bytes into content. feed() -> (content, done, leftover)."""

    __slots__ = ("_tail", "_first", "_normalize", "_limit", "size", "received",
                 "too_big", "bare_lf")

    def __init__(self, bare_newline: str, size_limit: int) -> None:
        # A virtual CRLF before the first line lets ".\r\n" and "..x" at the
        # very start be handled by the same searches as every other line.
        self._tail = b"\r\n"
        self._first = True
        self._normalize = bare_newline == "normalize"
        self._limit = size_limit
        self.size = 0          # content bytes accepted so far (after unstuffing)
        self.received = 0      # raw bytes consumed, for "lost connection after DATA (N bytes)"
        self.too_big = False
        self.bare_lf = False

    def feed(self, data: bytes | bytearray) -> tuple[bytes, bool, bytes]:
        w = self._tail + data
        end, dots, bare = self._scan(w)
        if end >= 0:
            region, leftover, done = w[:end + 2], w[end + 5:], True
            self._tail = b""
        else:
            n = len(w)
            crlf = w.rfind(b"\r\n")
            if crlf >= 0 and n - crlf < 5:
                # "\r\n" plus fewer than 3 bytes: could still become
                # "\r\n.\r\n" or a dot-stuffed line; keep it.
                cut = crlf
            elif w.endswith((b"\r", b"\n")):
                # a lone CR may start a CRLF; a bare LF may be followed by a dot
                cut = n - 1
            else:
                cut = n
            region, leftover, done = w[:cut], b"", False
            self._tail = w[cut:]
        self.received += len(data) - len(leftover)
        return self._clean(region, dots, bare), done, leftover

    def _scan(self, w: bytes) -> tuple[int, bool, bool]:
        """Where the terminator starts in w (-1: not there yet), whether a
        line may start with a dot before it, and whether a bare LF may come
        before it (True may be spare: replace or has_bare_lf then finds
        nothing; it is never missing)."""
        m = bare_lf_or_dot(w)
        if m is None:
            return -1, False, False
        if m.end() - m.start() == 2 and w.startswith(_TERMINATOR, m.start() - 1):
            return m.start() - 1, False, False      # nothing to look at before the end
        if self._normalize:
            m = _DOT_AFTER_LF(w)
            start = -1 if m is None else m.start() - 1   # the hit starts at the LF of a CRLF
        else:
            m = _DOT_AFTER_CRLF(w)
            start = -1 if m is None else m.start()
        if m is None:
            return -1, False, True
        if start >= 0 and w.startswith(_TERMINATOR, start):
            return start, False, True
        # A line starts with a dot. No terminator starts before this hit
        # (its own hit would have come first): a plain search finds it.
        return w.find(_TERMINATOR, start + 1), True, True

    def _clean(self, region: bytes, dots: bool, bare: bool) -> bytes:
        """bare: whether region may hold a bare LF (False: surely not)."""
        if not region:
            return b""
        if dots:
            # "\n." also matches "\r\n.": both kinds of line start lose the dot.
            region = region.replace(b"\n.", b"\n") if self._normalize \
                else region.replace(b"\r\n.", b"\r\n")
        if bare and has_bare_lf(region):
            self.bare_lf = True
            if self._normalize:
                region = region.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if self._first:
            region = region[2:]
            self._first = False
        if self.too_big:
            return b""
        self.size += len(region)
        if self._limit and self.size > self._limit:
            self.too_big = True
            return b""
        return region
