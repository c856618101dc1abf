"""mime_checks - header_checks inside a message body, and body_checks.

SYNOPSIS
    found = check_body(body, content_type, mime=check, nested=check)
    content = content[:body_offset] + found.apply(body)

DESCRIPTION
    Postfix's cleanup reads the body as MIME and looks the headers of each
    part up in mime_header_checks, and the headers of an attached message
    (message/rfc822) in nested_header_checks; both default to
    $header_checks, which is how the common "block .exe attachments" rule
    (/^Content-(Type|Disposition):.*name=.*\\.exe/ REJECT) works.

    check_body() follows the multipart boundaries from the Content-Type
    headers (the primary one given, then each part's), looks each part
    header up with ``mime`` and each header of an attached message with
    ``nested``, and returns what header_checks.verdict() made of the
    answers: the edits to the body (IGNORE, REPLACE, PREPEND), the actions
    for cleanup and the refusal, if any. With ``lines`` (body_checks) it
    also looks up each line of body text (boundary lines included, part
    headers and empty lines not), one line without its end at a time, the
    first ``limit`` bytes of each part (body_checks_size_limit); IGNORE
    removes the line,
    REPLACE and PREPEND take any text there. After a REJECT or DISCARD nothing
    more is looked up. A line that starts with "--" and a boundary of an
    enclosing multipart ends the parts inside it, as in Postfix's
    mime_state. Malformed MIME is never an error: what cannot be followed
    is body text. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .header_checks import ContentAction, Verdict, verdict
from .reply import StatusReply

Check = Callable[[str], "str | None"]

_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)
_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")      # match() anchors it at pos


@dataclass(slots=True)
class BodyChecks:
    """What the checks found in a body."""

    edits: list[tuple[int, int, bytes]] = field(default_factory=list)   # start, end, new bytes
    actions: list[ContentAction] = field(default_factory=list)
    error: StatusReply | None = None
    stopped: bool = False                # a REJECT or DISCARD: look no further

    def apply(self, body: bytes) -> bytes:
        """The body with the edits made."""
        if not self.edits:
            return body
        out, pos = [], 0
        for start, end, new in self.edits:
            out.append(body[pos:start])
            out.append(new)
            pos = end
        out.append(body[pos:])
        return b"".join(out)


def media_type(value: str) -> tuple[str, bytes | None]:
    """A Content-Type value's type/subtype (lower case) and its multipart boundary."""
    kind = value.split(";", 1)[0].strip().lower()
    m = _BOUNDARY.search(value) if kind.startswith("multipart/") else None
    boundary = (m.group(1) if m.group(1) is not None else m.group(2)) if m else None
    return kind, boundary.encode("utf-8", "surrogateescape") if boundary else None


def check_body(body: bytes, content_type: str, *, mime: Check | None,
               nested: Check | None, lines: Check | None = None,
               limit: int = 51200, boundary_limit: int = 2048) -> BodyChecks:
    """header_checks on the part and attached-message headers of ``body``
    (the content after the primary header, from its blank line on).
    boundary_limit: mime_boundary_length_limit, the characters of a
    boundary string compared (Postfix's mime_state keeps no more)."""
    found = BodyChecks()
    if not (mime or nested or lines):
        return found
    segment = 0                         # body_checks bytes seen in this part
    for kind, start, end, text in walk(body, content_type, body_lines=lines is not None,
                                       boundary_limit=boundary_limit):
        if found.stopped:
            break
        if kind in ("body", "boundary"):
            # An empty line is never looked up (Postfix's maps_find() skips
            # an empty key); a delimiter line is, as body text of the part
            # it ends (seen live: "warning: body --BB" from cleanup and smtp).
            if lines is not None and text and segment < limit:
                segment += end - start
                value = lines(text)
                if value is not None:
                    _take(verdict(value, text, "body"), body[start:end], start, end, found)
            if kind == "boundary":
                segment = 0
            continue
        check = mime if kind == "mime" else nested
        if check is not None:
            value = check(text)
            if value is not None:
                _take(verdict(value, text), body[start:end], start, end, found)
    return found


def walk(body: bytes, content_type: str, *, body_lines: bool = True,
         boundary_limit: int = 2048) -> Iterator[tuple[str, int, int, str]]:
    """The pieces of ``body`` in order, as Postfix's mime_state sees them:
    (kind, start, end, text) with kind "mime" (a header of a part), "nested"
    (a header of an attached message/rfc822), "boundary" (a delimiter line
    that starts a part) or "body" (any other line, empty ones and the blank
    line after a header block included). A header's text keeps the newlines
    of its continuation lines; a line's has no line end. body_lines false:
    stop once only body text without boundaries can follow. boundary_limit:
    mime_boundary_length_limit (see check_body)."""
    kind, boundary = media_type(content_type)
    boundaries: list[bytes] = [boundary[:boundary_limit]] if boundary else []
    # What the next lines are: "body", or a header block: "mime" or "nested".
    expect = "nested" if kind == "message/rfc822" else "body"
    pos, n = 0, len(body)
    # The blank line that ends the primary header.
    if body.startswith((b"\r\n", b"\n")):
        pos = body.index(b"\n") + 1
        yield "body", 0, pos, ""
    while pos < n:
        if expect == "body":
            if not boundaries and not body_lines:
                return
            start = pos
            end = body.find(b"\n", pos)
            end = n if end < 0 else end + 1
            line = body[pos:end].rstrip(b"\r\n")
            pos = end
            delimiter = _delimiter(line, boundaries) if line.startswith(b"--") else None
            yield ("boundary" if delimiter == "part" else "body", start, end,
                   line.decode("utf-8", "surrogateescape"))
            if delimiter == "part":
                expect = "mime"
            continue
        block_kind = expect
        content_type = ""
        while pos < n:
            end = body.find(b"\n", pos)
            end = n if end < 0 else end + 1
            if not body[pos:end].strip(b"\r\n"):
                yield "body", pos, end, ""          # the blank line that ends the block
                pos = end
                break
            m = _NAME.match(body, pos)
            if m is None:
                break                               # not a header: body text from here
            while end < n and body[end:end + 1] in (b" ", b"\t"):
                nxt = body.find(b"\n", end)
                end = n if nxt < 0 else nxt + 1
            text = body[pos:end].decode("utf-8", "surrogateescape").rstrip("\r\n")
            text = text.replace("\r\n", "\n")
            if m.group(1).lower() == b"content-type":
                content_type = text.split(":", 1)[1]
            yield block_kind, pos, end, text
            pos = end
        part_type, part_boundary = media_type(content_type)
        if part_boundary:
            boundaries.append(part_boundary[:boundary_limit])
        expect = "nested" if part_type == "message/rfc822" else "body"


def _delimiter(line: bytes, boundaries: list[bytes]) -> str | None:
    """"part" or "close" when line is a delimiter of an enclosing multipart
    (the parts inside it end; a closing one ends that multipart too), else None."""
    for depth in range(len(boundaries) - 1, -1, -1):
        b = boundaries[depth]
        if line.startswith(b"--" + b):
            del boundaries[depth + 1:]
            if line[2 + len(b):].startswith(b"--"):
                boundaries.pop()
                return "close"
            return "part"
    return None


def _take(v: Verdict, raw: bytes, start: int, end: int, found: BodyChecks) -> None:
    if v.action is not None:
        found.actions.append(v.action)
        found.stopped = v.action.action in ("reject", "discard")
    if v.error is not None:
        found.error = v.error
    if v.edit:
        eol = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
        line = v.line.encode("utf-8", "surrogateescape") + eol
        new = b"" if v.edit == "ignore" else line + (raw if v.edit == "prepend" else b"")
        found.edits.append((start, end, new))


__all__ = ["BodyChecks", "check_body", "media_type", "walk"]
