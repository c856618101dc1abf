"""header_checks - what a header_checks(5) action does to one header.

SYNOPSIS
    v = verdict("REJECT no spam here", "Subject: spam")
    v.error        # StatusReply(550, "5.7.1", "no spam here")
    v.action       # ContentAction("reject", "Subject: spam", "5.7.1 no spam here")

DESCRIPTION
    cleanup looks every primary header up in the header_checks tables (one
    logical header as one string, continuation lines joined by "\\n", no
    final line end); the first table that answers gives the action, which
    verdict() turns into what clean_header does with the header (edit) and
    what cleanup logs or carries out for the whole message (action):

      DUNNO, OK            nothing
      IGNORE               the header is removed
      REPLACE text         the header becomes text
      PREPEND text         text is put before the header
      REJECT [text]        the message is refused: 550 5.7.1 text (default
                           "message content rejected"; text may begin with
                           its own 4.x.x or 5.x.x code)
      WARN [text]          logged as "warning: header ..."
      INFO [text]          logged as "info: header ..."
      HOLD [text], DISCARD [text]
                           the message goes to the hold queue, or is
                           dropped with a success reply
      FILTER transport:destination, REDIRECT address, BCC address
                           as the same actions of smtpd's access tables

    Anything else is logged as a warning and changes nothing, as Postfix's
    cleanup does with an unknown action. Pure: no I/O, no logging.

SEE ALSO
    Postfix header_checks(5), src/cleanup/cleanup_message.c (cleanup_act).
"""

from __future__ import annotations

import re

from mailsys.frozen import frozen

from .reply import StatusReply

DEFAULT_REJECT_TEXT = "message content rejected"
_CODE = re.compile(r"^([45])\.\d{1,3}\.\d{1,3}(?:\s+|$)")
_HEADER_LINE = re.compile(r"^[!-9;-~]+:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@frozen
class ContentAction:
    """An action for cleanup to log or carry out.

    action: reject, warning, info, hold, discard, filter, redirect, bcc, or
    "unknown" (text is then the whole table value). header: the header it
    matched. text: the reason logged after it, or the action's argument (the
    address, transport:destination)."""

    action: str
    header: str
    text: str = ""
    kind: str = "header"                 # "body" for body_checks: logged as "body <line>"


@frozen
class Verdict:
    """What to do with one header, and what to tell cleanup."""

    edit: str = ""                       # "", "ignore", "replace", "prepend"
    line: str = ""                       # the new or prepended header line
    action: ContentAction | None = None
    error: StatusReply | None = None     # the reply refusing the message


KEEP = Verdict()


def verdict(value: str, header: str, kind: str = "header") -> Verdict:
    """What the table value ``value`` found for ``header`` asks (or for a
    body line, kind "body": the same actions, on the line)."""
    word, _, rest = value.strip().partition(" ")
    upper, rest = word.upper(), rest.strip()
    if upper in ("", "DUNNO", "OK"):
        return KEEP
    if upper == "IGNORE":
        return Verdict(edit="ignore")
    if upper in ("REPLACE", "PREPEND") and _HEADER_LINE.match(rest):
        return Verdict(edit=upper.lower(), line=rest)
    if upper == "REJECT":
        code = _CODE.match(rest)
        enhanced = code.group(0).strip() if code else "5.7.1"
        text = (rest[code.end():] if code else rest) or DEFAULT_REJECT_TEXT
        status = StatusReply(550 if enhanced[0] == "5" else 450, enhanced, text)
        return Verdict(action=ContentAction("reject", header, f"{enhanced} {text}", kind),
                       error=status)
    if upper in ("WARN", "INFO", "HOLD", "DISCARD"):
        name = "warning" if upper == "WARN" else upper.lower()
        return Verdict(action=ContentAction(name, header, rest, kind))
    wanted = ":" if upper == "FILTER" else "@"        # transport:destination, an address
    if upper in ("FILTER", "REDIRECT", "BCC") and wanted in rest:
        return Verdict(action=ContentAction(upper.lower(), header, rest, kind))
    if kind == "body" and upper in ("REPLACE", "PREPEND"):
        return Verdict(edit=upper.lower(), line=rest)          # any text for a body line
    return Verdict(action=ContentAction("unknown", header, value.strip(), kind))


def log_text(action: ContentAction, *, origin: str, sender: str, recipient: str | None,
             proto: str = "", helo: str = "") -> str:
    """The line cleanup logs after "QID: " (Postfix cleanup_act_log), e.g.
    'reject: header Subject: spam from c[ip]; from=<a> to=<b> proto=ESMTP
    helo=<h>: 5.7.1 message content rejected'."""
    # A folded header's newline and tab show as "?", as Postfix's log
    # output (printable()) shows every control character.
    header = _CONTROL.sub("?", action.header[:200])
    parts = [f"{action.action}: {action.kind} {header} from {origin}; from=<{sender}>"]
    if recipient is not None:
        parts.append(f" to=<{recipient}>")
    if proto:
        parts.append(f" proto={proto}")
    if helo:
        parts.append(f" helo=<{helo}>")
    if action.text:
        parts.append(f": {action.text}")
    return "".join(parts)


__all__ = ["ContentAction", "DEFAULT_REJECT_TEXT", "KEEP", "Verdict", "log_text", "verdict"]
