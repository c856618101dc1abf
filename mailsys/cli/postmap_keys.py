"""postmap_keys - the lookup keys of postmap -q - with -h, -b and -m.

SYNOPSIS
    for key in message_keys(lines, headers=True, body=False, mime=True):
        ...

DESCRIPTION
    With -h or -b, postmap(1) reads standard input as one message in RFC
    5322 format and looks up keys made from it, as Postfix's postmap
    feeds its MIME engine (mime_state) and takes what comes out:

      -h        each logical header line of the primary header is one key,
                a folded header one key with its newlines;
      -b        each line of the body is one key, from the line that ends
                the primary header (the blank line too) to the end;
      -h -b     both, in message order;
      -m        with -h: also each header of an attachment (a multipart
                part) and of an attached message/rfc822, read to the end
                of the message; with -b: those header lines are no body
                keys (the blank line after each block and the boundary
                lines are); as header_checks / mime_header_checks /
                nested_header_checks and body_checks see the message.

    Without -m the primary header ends the keys of -h. MIME structure is
    followed by mailsys.message.mime_checks.walk(), the reader cleanup's
    checks use; what it cannot follow is body text, never an error (Postfix
    reports no MIME error here either: postmap asks mime_state for none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from mailsys.message.mime_checks import walk

# The start of a header line (Postfix mime_state: a name of printable
# characters other than ":", optional blanks, a colon).
_HEADER = re.compile(r"[!-9;-~]+[ \t]*:")
_CONTENT_TYPE = re.compile(r"content-type[ \t]*:", re.IGNORECASE)


def message_keys(lines: Iterable[str], *, headers: bool, body: bool,
                 mime: bool = False) -> Iterator[str]:
    """The keys of one message read as lines without their line ends."""
    it = iter(lines)
    pending: str | None = None
    content_type = ""
    first_body: str | None = None
    for line in it:
        if pending is not None and line[:1] in (" ", "\t"):
            pending += "\n" + line
            continue
        if pending is not None:
            if _CONTENT_TYPE.match(pending):
                content_type = pending.split(":", 1)[1]
            if headers:
                yield pending
        pending = None
        if _HEADER.match(line):
            pending = line
            continue
        first_body = line
        break
    if pending is not None:
        if headers:
            yield pending
        return
    if first_body is None or not (body or mime):
        return
    # A header that ends at a line other than an empty one: mime_state
    # puts an empty body line before it (seen with Postfix 3.7's postmap).
    if first_body and body:
        yield ""
    if not mime:
        yield first_body
        yield from it
        return
    # The rest goes through the MIME reader as one body, as it came; keys are
    # cut from it by offset, so a CR before a line end stays in the key (as
    # Postfix's, which reads lines up to the newline only).
    data = ("\n".join((first_body, *it)) + "\n").encode("utf-8", "surrogateescape")
    # walk() takes the body from the blank line that ends the primary header
    # on; after a header that ends otherwise, plain body text follows.
    blank = first_body in ("", "\r")
    if not blank:
        data = b"\n" + data
    for kind, start, end, _ in walk(data, content_type):
        if not blank:
            blank = True
            continue
        if kind in ("mime", "nested") and headers or kind in ("body", "boundary") and body:
            yield data[start:end].removesuffix(b"\n").decode("utf-8", "surrogateescape")


__all__ = ["message_keys"]
