"""mime_state - Postfix's MIME structure checks for cleanup (mime_state.c).

SYNOPSIS
    policy = MimePolicy.from_config(cfg, header_checks=bool(...))
    found = policy.scan(content)            # the whole message, header first
    if found.error: refuse with found.error.reply; log found.error.log(...)
    found.declares_8bit                     # a Content-Transfer-Encoding: 8bit or binary

DESCRIPTION
    Postfix's cleanup runs every message through one MIME state machine
    that follows the primary header, the multipart boundaries and the
    headers of attached messages, and reports what the strict_* parameters
    ask for. The first error refuses the message with 550 5.6.0 and its
    text (mime_state.c mime_err_detail, most serious first):

      MIME nesting exceeds safety limit                 (multipart nested deeper
          than mime_nesting_limit; reported only when a strict_* parameter
          or header_checks, mime_header_checks or nested_header_checks is set)
      improper use of 8-bit data in message header      (strict_7bit_headers,
          strict_8bitmime: a header with a byte >= 128)
      improper use of 8-bit data in message body        (strict_8bitmime_body,
          strict_8bitmime: 8-bit data where the MIME header declares, or
          defaults to, 7bit; the SMTP BODY= parameter does not count)
      invalid message/* or multipart/* encoding domain  (strict_mime_encoding_domain:
          a multipart or message part with a Content-Transfer-Encoding other
          than 7bit, 8bit, binary)

    Boundary strings are compared on their first mime_boundary_length_limit
    characters. With detect_8bit_encoding_header (default yes) a
    Content-Transfer-Encoding: 8bit or binary header in any header block
    marks the message as 8-bit content: cleanup records BODY=8BITMIME for
    it, even over BODY=7BIT (Postfix 3.7.11 relayed such a message with
    "MAIL FROM:<s@example.com> BODY=8BITMIME", and did so for an 8bit
    MIME part too).

    Seen live with Postfix 3.7.11 (the SMTP reply, then cleanup's line; no
    proto= or helo= in it, unlike the header_checks lines):

      550 5.6.0 improper use of 8-bit data in message header
      QID: reject: mime-error improper use of 8-bit data in message header:
        Subject: caf?? from unknown[127.0.0.1]; from=<s@example.com> to=<r@example.net>

    With mime_nesting_limit = N Postfix 3.7.11 accepted N+2 nested
    multiparts and refused N+3, naming the Content-Type header that went
    too deep; this module counts the same way.

    The scan walks the message line by line only where it must: body text
    between candidate boundary lines is skipped with C-speed searches, and
    no scan runs at all when nothing asked for can be found (ASCII content,
    too few "boundary" words, no Content-Transfer-Encoding header). Pure.
"""

from __future__ import annotations

import re
from typing import Any

from mailsys.frozen import frozen

from .headers import header_end
from .reply import StatusReply

__all__ = ["MimeError", "MimePolicy", "MimeScan", "NESTING", "HEADER_8BIT", "BODY_8BIT",
           "ENCODING_DOMAIN"]

# mime_state.c mime_err_detail, in its order of seriousness.
NESTING = "MIME nesting exceeds safety limit"
HEADER_8BIT = "improper use of 8-bit data in message header"
BODY_8BIT = "improper use of 8-bit data in message body"
ENCODING_DOMAIN = "invalid message/* or multipart/* encoding domain"
_ORDER = (NESTING, HEADER_8BIT, BODY_8BIT, ENCODING_DOMAIN)

# cleanup_message.c: the reported text is cut to 100 bytes.
_TEXT_LEN = 100

# Encodings: the first is the name's encoding, the second its domain.
_ENCODINGS = {"7bit": ("7bit", "7bit"), "8bit": ("8bit", "8bit"),
              "binary": ("binary", "binary"), "base64": ("base64", "7bit"),
              "quoted-printable": ("quoted-printable", "7bit")}

_HEADER = re.compile(rb"([!-9;-~]+)[ \t]*:")
_8BIT = re.compile(rb"[\x80-\xff]")
_BOUNDARY_WORD = re.compile(rb"(?i)boundary")
_CTE = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:")
_COMPOSITE = re.compile(rb"(?im)^content-type[ \t]*:[ \t]*(?:multipart|message)[ \t]*/")
_CTE_8BIT = re.compile(rb"(?im)^content-transfer-encoding[ \t]*:[ \t]*(?:8bit|binary)\b")
_TOKEN = re.compile(r'\s*(?:\(([^()]*)\)\s*)*(?:"((?:[^"\\]|\\.)*)"|([^\s()<>@,;:\\"/\[\]?=]+)|(.))')
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\uffff]")


@frozen
class MimeError:
    """The first error the scan found: its text and the header or line it was in."""

    text: str
    where: bytes

    @property
    def reply(self) -> StatusReply:
        return StatusReply(550, "5.6.0", self.text)

    def log(self, *, origin: str, sender: str, recipient: str | None) -> str:
        """The line cleanup logs after "QID: " (cleanup_mime_error_callback)."""
        where = self.where[:_TEXT_LEN].decode("latin-1")
        where = _CONTROL.sub("?", where)
        to = f" to=<{recipient}>" if recipient is not None else " to=<unknown>"
        return f"reject: mime-error {self.text}: {where} from {origin}; from=<{sender}>{to}"


@frozen
class MimeScan:
    """What the scan found."""

    error: MimeError | None = None
    declares_8bit: bool = False


NOTHING = MimeScan()


@frozen
class MimePolicy:
    """The parameters cleanup's MIME state machine reads."""

    nesting_limit: int = 100
    boundary_limit: int = 2048
    header_8bit: bool = False          # strict_7bit_headers or strict_8bitmime
    body_8bit: bool = False            # strict_8bitmime_body or strict_8bitmime
    encoding_domain: bool = False      # strict_mime_encoding_domain
    nesting: bool = False              # report nesting (a strict_* or any header checks)
    detect_8bit: bool = True           # detect_8bit_encoding_header
    mime: bool = True                  # not disable_mime_input_processing

    @classmethod
    def from_config(cls, cfg: Any, *, header_checks: bool) -> MimePolicy:
        """from_config - cleanup_init.c's MIME options; header_checks: whether
        any of header_checks, mime_header_checks, nested_header_checks is set."""
        strict = bool(cfg["strict_8bitmime"])
        header_8bit = strict or bool(cfg["strict_7bit_headers"])
        body_8bit = strict or bool(cfg["strict_8bitmime_body"])
        domain = bool(cfg["strict_mime_encoding_domain"])
        return cls(nesting_limit=int(cfg["mime_nesting_limit"]),
                   boundary_limit=int(cfg["mime_boundary_length_limit"]),
                   header_8bit=header_8bit, body_8bit=body_8bit, encoding_domain=domain,
                   nesting=header_8bit or body_8bit or domain or header_checks,
                   detect_8bit=bool(cfg["detect_8bit_encoding_header"]),
                   mime=not cfg["disable_mime_input_processing"])

    def scan(self, content: bytes, *, want_8bit: bool = True) -> MimeScan:
        """Scan content (header and body, CRLF or LF line ends). want_8bit:
        whether declares_8bit is of interest (the message is not 8BITMIME yet)."""
        # Only a multipart or message/* primary part has headers below the
        # primary header: otherwise the (small) header alone is searched.
        head = content[:header_end(content)]
        area = content if self.mime and _COMPOSITE.search(head) else head
        detect = want_8bit and self.detect_8bit and self.mime \
            and _CTE_8BIT.search(area) is not None
        ascii_only = content.isascii()
        checks_8bit = (self.header_8bit or self.body_8bit) and not ascii_only
        nesting = self.nesting and area is content \
            and len(_BOUNDARY_WORD.findall(content)) > self.nesting_limit + 2
        domain = self.encoding_domain and self.mime and _CTE.search(area) is not None
        if not (detect or checks_8bit or nesting or domain):
            return NOTHING
        return _Walk(self, content, header_8bit=self.header_8bit and not ascii_only,
                     body_8bit=self.body_8bit and not ascii_only).run()


class _Walk:
    """One pass of the state machine over a message (mime_state_update())."""

    def __init__(self, policy: MimePolicy, content: bytes, *, header_8bit: bool,
                 body_8bit: bool) -> None:
        self.p = policy
        self.content = content
        self.header_8bit = header_8bit
        self.body_8bit = body_8bit
        self.errors: dict[str, bytes] = {}
        self.declares_8bit = False
        self.stack: list[tuple[bytes, tuple[str, str]]] = []   # boundary, default type
        self._part("primary", ("text", "plain"))

    def _part(self, state: str, ctype: tuple[str, str]) -> None:
        self.state = state                       # primary, multipart, nested, body
        self.ctype = ctype
        self.encoding = self.domain = "7bit"

    def _report(self, text: str, where: bytes) -> None:
        self.errors.setdefault(text, where)

    def run(self) -> MimeScan:
        content, n, pos = self.content, len(self.content), 0
        while pos < n:
            if self.state == "body":
                pos = self._body(pos)
                continue
            end = _line_end(content, pos)
            line = content[pos:end].rstrip(b"\r\n")
            m = _HEADER.match(line)
            if m is not None:
                while end < n and content[end:end + 1] in (b" ", b"\t"):
                    end = _line_end(content, end)
                self._header(content[pos:end].rstrip(b"\r\n").replace(b"\r\n", b"\n"),
                             m.group(1).lower())
                pos = end
                continue
            self._end_of_header_block(blank=not line)
            if not line:
                pos = end                # the blank line is not body text
        error = next((MimeError(text, self.errors[text]) for text in _ORDER
                      if text in self.errors), None)
        return MimeScan(error, self.declares_8bit)

    def _header(self, header: bytes, name: bytes) -> None:
        if self.p.mime and name == b"content-type":
            self._content_type(header)
        elif self.p.mime and name == b"content-transfer-encoding":
            value = header.split(b":", 1)[1].decode("latin-1")
            token = _first_token(value).lower()
            if token in _ENCODINGS:
                self.encoding, self.domain = _ENCODINGS[token]
                if token in ("8bit", "binary") and self.p.detect_8bit:
                    self.declares_8bit = True
        if self.header_8bit and _8BIT.search(header):
            self._report(HEADER_8BIT, header)

    def _content_type(self, header: bytes) -> None:
        value = header.split(b":", 1)[1].decode("latin-1")
        segments = value.split(";")
        kind = _tokens(segments[0])
        major = kind[0].lower() if kind else ""
        minor = kind[2].lower() if len(kind) >= 3 and kind[1] == "/" else ""
        if major == "multipart":
            self.ctype = ("multipart", minor)
            default = ("message", "rfc822") if minor == "digest" else ("text", "plain")
            for segment in segments[1:]:
                tokens = _tokens(segment)
                if len(tokens) >= 3 and tokens[0].lower() == "boundary" and tokens[1] == "=":
                    # Postfix's nesting_level, as 3.7.11 counts it: one
                    # less than the boundaries in force (see the module text).
                    if len(self.stack) - 1 > self.p.nesting_limit:
                        if self.p.nesting:
                            self._report(NESTING, header)
                    else:
                        bound = tokens[2].encode("latin-1")[:self.p.boundary_limit]
                        self.stack.append((bound, default))
        elif major in ("text", "message"):
            self.ctype = (major, minor)
        elif kind:
            self.ctype = ("other", "")

    def _end_of_header_block(self, *, blank: bool) -> None:
        major, minor = self.ctype
        if self.p.encoding_domain:
            bad = (major == "message" and minor in ("partial", "external-body")
                   and self.domain != "7bit") \
                or (major == "message" and minor not in ("partial", "external-body")
                    and self.encoding != self.domain) \
                or (major == "multipart" and self.encoding != self.domain)
            if bad:
                self._report(ENCODING_DOMAIN, self.encoding.encode("ascii"))
        if blank and major == "message" and minor == "rfc822":
            self._part("nested", ("text", "plain"))
        elif blank and major == "multipart":
            self._part("body", ("other", ""))
        else:
            self.state = "body"

    def _body(self, pos: int) -> int:
        """Body text from pos up to the next line that may be a boundary
        (one that starts with "--"), and that line. Returns where to go on."""
        content, n = self.content, len(self.content)
        if not self.stack:
            self._body_8bit(pos, n)
            return n
        if content.startswith(b"--", pos):
            line_start = pos
        else:
            found = content.find(b"\n--", pos)
            if found < 0:
                self._body_8bit(pos, n)
                return n
            line_start = found + 1
        self._body_8bit(pos, line_start)
        end = _line_end(content, line_start)
        self._body_8bit(line_start, end)
        line = content[line_start:end].rstrip(b"\r\n")
        if len(line) > 2:
            for depth in range(len(self.stack) - 1, -1, -1):
                bound, default = self.stack[depth]
                if line[2:].startswith(bound):
                    del self.stack[depth + 1:]
                    if line[2 + len(bound):].startswith(b"--"):
                        self.stack.pop()
                        self._part("body", ("other", ""))
                    else:
                        self._part("multipart", default)
                    break
        return end

    def _body_8bit(self, start: int, end: int) -> None:
        if not self.body_8bit or self.encoding != "7bit" or BODY_8BIT in self.errors:
            return
        m = _8BIT.search(self.content, start, end)
        if m is not None:
            a = self.content.rfind(b"\n", 0, m.start()) + 1
            self._report(BODY_8BIT, self.content[a:_line_end(self.content, a)].rstrip(b"\r\n"))


def _line_end(content: bytes, pos: int) -> int:
    end = content.find(b"\n", pos)
    return len(content) if end < 0 else end + 1


def _tokens(text: str) -> list[str]:
    """header_token(): words, quoted strings and specials, comments skipped."""
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group(2) is not None:
            out.append(re.sub(r"\\(.)", r"\1", m.group(2)))
        elif m.group(3) is not None:
            out.append(m.group(3))
        elif m.group(4) is not None and not m.group(4).isspace():
            out.append(m.group(4))
    return out


def _first_token(value: str) -> str:
    tokens = _tokens(value)
    return tokens[0] if tokens else ""
