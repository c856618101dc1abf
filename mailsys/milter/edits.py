"""edits - a message as milters see it, and their end-of-message changes applied.

SYNOPSIS
    msg = MilterMessage.parse(content)                # CRLF header + body
    headers = msg.milter_headers(leading_space=False) # (name, value) per SMFIC_HEADER
    msg = apply(msg, modifications)                   # new headers, body
    env = envelope_changes(modifications)             # sender, recipients, quarantine

DESCRIPTION
    Headers go to a milter one by one as name and value: the value is what
    follows the colon, without the space after it unless the milter
    negotiated SMFIP_HDR_LEADSPC, with folded lines joined by a bare LF as
    Postfix sends them (milter8.c sends the header as cleanup stored it).
    The body goes with CRLF line ends, as received.

    The changes are Postfix's (cleanup_milter.c), in the order the milters
    sent them:

      - add header: after the last header;
      - insert header at index N: after the first N headers (0: on top);
      - change header N of a name: the Nth header of that name (counted
        case-insensitively, 1 for 0); an empty value deletes it; when there
        are fewer than N, a non-empty value is added as a new header;
      - replace body: the pieces of all SMFIR_REPLBODY packets of one
        milter, in order, make the new body (a later milter's replacement
        wins);
      - the envelope changes (sender, added and deleted recipients,
        quarantine) are returned for the caller to apply.

    With milter_header_checks (Postfix 2.7) each header a milter adds,
    inserts or changes is looked up first, as Postfix's cleanup_milter.c
    does (apply(), check): it may be dropped or replaced, and the other
    actions are returned for cleanup to log and carry out.

    A header that no milter touched keeps its exact bytes. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mailsys.frozen import frozen
from mailsys.message.header_checks import ContentAction, verdict
from mailsys.milter import protocol as p


@frozen
class Header:
    name: str
    value: str                  # after "name:", folded lines joined by "\n"
    raw: bytes | None = None    # the original bytes (with CRLF), None for a new header
    added: bool = False         # added by a milter (not changed from one received)

    def text(self) -> str:
        """The header as one str, folded lines joined by "\\n"."""
        value = self.value.replace("\r\n", "\n").replace("\r", "\n")
        sep = ":" if value[:1] in (" ", "\t") else ": "
        return self.name + sep + value

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return self.text().replace("\n", "\r\n").encode("utf-8", "surrogateescape") + b"\r\n"


@frozen
class MilterMessage:
    headers: tuple[Header, ...]
    body: bytes

    @classmethod
    def parse(cls, content: bytes) -> "MilterMessage":
        """Headers up to the first empty line (or the first line that is not
        a header), then the body."""
        headers: list[Header] = []
        pos, n = 0, len(content)
        while pos < n:
            end = content.find(b"\n", pos)
            end = n if end < 0 else end + 1
            line = content[pos:end]
            if line in (b"\r\n", b"\n"):
                pos = end
                break
            if line[:1] in (b" ", b"\t") and headers:
                h = headers[-1]
                text = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                headers[-1] = replace(h, value=h.value + "\n" + text, raw=h.raw + line)
                pos = end
                continue
            colon = line.find(b":")
            name = line[:colon]
            if colon <= 0 or any(c <= 32 or c >= 127 for c in name):
                break               # the body starts without an empty line
            value = line[colon + 1:].rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            headers.append(Header(name.decode("ascii"), value, line))
            pos = end
        return cls(tuple(headers), content[pos:])

    def milter_headers(self, leading_space: bool = False) -> list[tuple[str, str]]:
        out = []
        for h in self.headers:
            value = h.value if leading_space else h.value.lstrip(" \t")
            out.append((h.name, value))
        return out

    def content(self) -> bytes:
        """Header and body as bytes."""
        head = b"".join(h.encode() for h in self.headers)
        return head + b"\r\n" + self.body if self.body or self.headers else self.body

    def split_added(self) -> tuple[tuple[str, ...], "MilterMessage", tuple[str, ...]]:
        """(top, rest, bottom): the headers milters put above every received
        one and below every received one, as text, and the rest.

        Postfix does not show milters its own Received: header, which sits
        just above the first header received: a header inserted at index 0
        lands above it (seen live with Postfix 3.7.11), where cleanup puts
        smtpd's PREPEND headers too. Postfix's cleanup adds a missing
        Message-Id:, Date: and From: before the milters run, so a header a
        milter appends comes after those."""
        headers = self.headers
        n = 0
        while n < len(headers) and headers[n].added:
            n += 1
        if n == len(headers):                  # no received header to place them by
            return (), self, ()
        m = len(headers)
        while headers[m - 1].added:
            m -= 1
        return (tuple(h.text() for h in headers[:n]), MilterMessage(headers[n:m], self.body),
                tuple(h.text() for h in headers[m:]))


@frozen
class EnvelopeChanges:
    sender: p.ChangeSender | None = None
    added: tuple[p.AddRecipient, ...] = ()
    deleted: tuple[str, ...] = ()
    quarantine: str | None = None


def _matches(h: Header, name: str) -> bool:
    return h.name.lower() == name.lower()


# What ends milter_header_checks for the message (Postfix clears its
# CLEANUP_FLAG_FILTER_ALL after these).
_LAST_CHECK = frozenset({"reject", "discard", "redirect"})


def apply(msg: MilterMessage, mods: tuple[object, ...] | list[object],
          check: Callable[[str], str | None] | None = None,
          hits: list[ContentAction] | None = None) -> MilterMessage:
    """msg with one milter's header and body changes applied, in order.

    check (milter_header_checks, Postfix 2.7): each header a milter adds,
    inserts or changes is looked up as "Name: value" first; IGNORE drops
    the request (a changed header keeps its old value), REPLACE puts its
    header there instead (and goes to hits too: Postfix logs it), and the
    other actions go to hits, for the caller to carry out and log
    (PREPEND, which Postfix does not do there either, as action
    "prepend"). After a REJECT, DISCARD or REDIRECT no header is looked
    up any more."""
    headers = list(msg.headers)
    body_pieces: list[bytes] | None = None
    found = hits if hits is not None else []

    def checked(name: str, value: str) -> tuple[str, str] | None:
        if check is None or any(a.action in _LAST_CHECK for a in found):
            return name, value
        text = Header(name, value).text()
        answer = check(text)
        if answer is None:
            return name, value
        v = verdict(answer, text)
        if v.action is not None:
            found.append(v.action)         # REPLACE, PREPEND and STRIP are logged too
        if v.edit == "ignore":
            return None
        if v.edit == "replace":
            new_name, _, new_value = v.line.partition(":")
            return new_name.strip(), new_value
        return name, value

    for mod in mods:
        match mod:
            case p.AddHeader(name, value):
                if (kept := checked(name, value)) is not None:
                    headers.append(Header(*kept, added=True))
            case p.InsertHeader(index, name, value):
                if (kept := checked(name, value)) is not None:
                    headers.insert(min(index, len(headers)), Header(*kept, added=True))
            case p.ChangeHeader(index, name, value):
                wanted = max(index, 1)
                seen = 0
                for i, h in enumerate(headers):
                    if _matches(h, name):
                        seen += 1
                        if seen == wanted:
                            if not value:
                                del headers[i]
                            elif (kept := checked(h.name, value)) is not None:
                                headers[i] = Header(*kept, added=h.added)
                            break
                else:
                    if value and (kept := checked(name, value)) is not None:
                        headers.append(Header(*kept, added=True))
            case p.ReplaceBody(chunk):
                if body_pieces is None:
                    body_pieces = []
                body_pieces.append(chunk)
    body = msg.body if body_pieces is None else _crlf(b"".join(body_pieces))
    return MilterMessage(tuple(headers), body)


def _crlf(body: bytes) -> bytes:
    """A replacement body with CRLF line ends (milters may send bare LF)."""
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def envelope_changes(mods: tuple[object, ...] | list[object],
                     into: EnvelopeChanges | None = None) -> EnvelopeChanges:
    """The sender, recipient and quarantine changes among mods, after into's."""
    env = into or EnvelopeChanges()
    sender, added, deleted, quarantine = env.sender, list(env.added), list(env.deleted), env.quarantine
    for mod in mods:
        match mod:
            case p.ChangeSender():
                sender = mod
            case p.AddRecipient():
                added.append(mod)
            case p.DeleteRecipient(address):
                deleted.append(address)
            case p.Quarantine(reason):
                quarantine = reason
    return EnvelopeChanges(sender, tuple(added), tuple(deleted), quarantine)


def strip_brackets(address: str) -> str:
    """<a@b> -> a@b, as addresses from milters usually come."""
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address


__all__ = ["Header", "MilterMessage", "EnvelopeChanges", "apply", "envelope_changes",
           "strip_brackets"]
