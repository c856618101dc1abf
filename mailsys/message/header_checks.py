"""header_checks - what a header_checks(5) action does to one header.

SYNOPSIS
    v = verdict("REJECT no spam here", "Subject: spam")
    v.error        # StatusReply(550, "5.7.1", "no spam here")
    v.action       # ContentAction("reject", "Subject: spam", "5.7.1 no spam here")
    check = screened(first_answer(tables), "header_checks", log.warning)

DESCRIPTION
    cleanup looks every primary header up in the header_checks tables (one
    logical header as one string, continuation lines joined by "\\n", no
    final line end); the first table that answers gives the action, which
    verdict() turns into what clean_header does with the header (edit) and
    what cleanup logs or carries out for the whole message (action):

      DUNNO, OK            nothing
      IGNORE               the header is removed (not logged)
      STRIP [text]         the header is removed, logged as "strip: header ..."
      REPLACE text         the header becomes text ("replace: header ...")
      PREPEND text         text is put before the header ("prepend: header ...")
      REJECT [text]        the message is refused: 550 5.7.1 text (default
                           "message content rejected"; text may begin with
                           its own 4.x.x or 5.x.x code: 451 4.x.x text; a
                           2.x.x one becomes 4.x.x, with a warning)
      WARN [text]          logged as "warning: header ..."
      INFO [text]          logged as "info: header ..."
      HOLD [text], DISCARD [text]
                           the message goes to the hold queue, or is
                           dropped with a success reply
      PASS [text]          logged as "pass: header ..."; nothing else
      FILTER transport:destination, REDIRECT address, BCC address
                           as the same actions of smtpd's access tables

    A table entry cleanup cannot use (an unknown action, a FILTER without
    transport:destination, a REDIRECT or BCC without @, a PREPEND or REPLACE
    without a header) changes nothing: screened() puts a lookup between
    the tables and verdict() that logs such an entry as Postfix's cleanup
    warns about it, naming the table's parameter and without a queue ID
    ("warning: bad REDIRECT target "x" in header_checks map -- need
    user@domain"), and answers as if the table had not matched.

    REJECT, DISCARD, PASS and a REDIRECT end the content checks of the
    message: no header_checks, body_checks or milter looks at the rest of
    it (Postfix clears CLEANUP_FLAG_FILTER_ALL). A ChecksGate, one per
    message, puts that between the tables and verdict(). Pure: no I/O;
    screened() logs through the callback it is given.

SEE ALSO
    Postfix header_checks(5), src/cleanup/cleanup_message.c (cleanup_act),
    src/global/header_body_checks.c (hbc_action).
"""

from __future__ import annotations

import re

from collections.abc import Callable

from mailsys.frozen import frozen

from .reply import StatusReply

DEFAULT_REJECT_TEXT = "message content rejected"
_CODE = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}(?:\s+|$)")
_HEADER_LINE = re.compile(r"^[!-9;-~]+:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@frozen
class ContentAction:
    """An action for cleanup to log or carry out.

    action: reject, warning, info, hold, discard, filter, redirect, bcc,
    prepend, replace, strip (the last three to log only: Verdict.edit
    carries them out), or "unknown" (text is then the whole table value).
    header: the header it matched. text: the reason logged after it, or the
    action's argument (the address, transport:destination, the new text)."""

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
    upper, rest = _split(value)
    if upper in ("", "DUNNO", "OK"):
        return KEEP
    if upper == "IGNORE":
        return Verdict(edit="ignore")
    if upper == "STRIP":
        return Verdict(edit="ignore", action=ContentAction("strip", header, rest, kind))
    if upper in ("REPLACE", "PREPEND") and rest and (kind == "body" or _HEADER_LINE.match(rest)):
        # REPLACE and PREPEND take any text for a body line.
        return Verdict(edit=upper.lower(), line=rest,
                       action=ContentAction(upper.lower(), header, rest, kind))
    if upper == "REJECT":
        code = _CODE.match(rest)
        enhanced = code.group(0).strip() if code else "5.7.1"
        if enhanced[0] == "2":
            enhanced = "4" + enhanced[1:]       # and a warning (dsn_warning())
        text = (rest[code.end():] if code else rest) or DEFAULT_REJECT_TEXT
        # smtpd answers cleanup's CLEANUP_STAT_CONT with 550, its
        # CLEANUP_STAT_DEFER (a 4.x.x text) with 451 (cleanup_strerror.c).
        status = StatusReply(550 if enhanced[0] == "5" else 451, enhanced, text)
        return Verdict(action=ContentAction("reject", header, f"{enhanced} {text}", kind),
                       error=status)
    if upper in ("WARN", "INFO", "HOLD", "DISCARD", "PASS"):
        name = "warning" if upper == "WARN" else upper.lower()
        return Verdict(action=ContentAction(name, header, rest, kind))
    wanted = ":" if upper == "FILTER" else "@"        # transport:destination, an address
    if upper in ("FILTER", "REDIRECT", "BCC") and wanted in rest:
        return Verdict(action=ContentAction(upper.lower(), header, rest, kind))
    return Verdict(action=ContentAction("unknown", header, value.strip(), kind))


def _split(value: str) -> tuple[str, str]:
    """("REJECT", "text") from "reject  text": the action ends at a blank
    or tab, its text starts after the white space that follows."""
    word, _, rest = value.strip().replace("\t", " ", 1).partition(" ")
    return word.upper(), rest.strip()


# The actions cleanup knows (Postfix cleanup_act(); DELAY is compiled out).
_CLEANUP_ACTIONS = frozenset({"REJECT", "WARN", "INFO", "FILTER", "DISCARD", "HOLD", "PREPEND",
                              "REPLACE", "REDIRECT", "BCC", "STRIP", "IGNORE", "DUNNO", "OK",
                              "PASS"})
# The actions after which cleanup_act() clears CLEANUP_FLAG_FILTER_ALL.
_FINAL_ACTIONS = frozenset({"REJECT", "DISCARD", "PASS", "REDIRECT"})


def table_problem(value: str, map_class: str, kind: str = "header",
                  unknown: str = "unknown") -> str | None:
    """The warning Postfix logs for a table value it cannot use, or None.

    map_class: the parameter that named the table (header_checks,
    mime_header_checks, body_checks, ...). unknown: "unknown" as cleanup
    words an unknown action, "unsupported" as header_body_checks.c does
    (milter_header_checks)."""
    upper, rest = _split(value)
    if upper not in _CLEANUP_ACTIONS:
        return f"{unknown} command in {map_class} map: {value.strip()}"
    if upper == "FILTER":
        if not rest:
            return f"missing FILTER command argument in {map_class} map"
        if ":" not in rest:
            return f"bad FILTER command {rest} in {map_class} -- need transport:destination"
    elif upper in ("REDIRECT", "BCC") and "@" not in rest:
        what = "target" if upper == "REDIRECT" else "address"
        return f'bad {upper} {what} "{rest}" in {map_class} map -- need user@domain'
    elif upper in ("PREPEND", "REPLACE"):
        if not rest:
            return f"{upper} action without text in {map_class} map"
        if kind == "header" and not _HEADER_LINE.match(rest):
            return (f'bad {upper} header text "{rest}" in {map_class} map -- '
                    'need "headername: headervalue"')
    return None


Check = Callable[[str], "str | None"]


def screened(check: Check | None, map_class: str, warn: Callable[[str], None],
             kind: str = "header", unknown: str = "unknown") -> Check | None:
    """check, with the entries table_problem() finds fault with logged
    through warn and answered as no match (Postfix leaves the header or
    line as it is)."""
    if check is None:
        return None

    def lookup(text: str) -> str | None:
        value = check(text)
        if value is None:
            return None
        problem = table_problem(value, map_class, kind, unknown)
        if problem is not None:
            warn(problem)
            return None
        note = dsn_warning(value)
        if note is not None:
            warn(note)
        return value
    return lookup


def dsn_warning(value: str) -> str | None:
    """The warning for a REJECT whose text starts with a 2.x.x code, which
    is then taken as 4.x.x (cleanup_message.c, cleanup_milter.c)."""
    upper, rest = _split(value)
    code = _CODE.match(rest) if upper == "REJECT" else None
    if code is None or code.group(1) != "2":
        return None
    return f"bad DSN action in {rest} -- need 4.x.x or 5.x.x"


class ChecksGate:
    """One message's content checks, open until an action ends them (see
    the module description): wrap() each check the message goes through;
    closed afterwards also means its milters are skipped."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False

    def wrap(self, check: Check | None) -> Check | None:
        """check (a screened() one: its answers are usable), answering no
        match once the gate is closed, and closing it on a final action."""
        if check is None:
            return None

        def lookup(text: str) -> str | None:
            if self.closed:
                return None
            value = check(text)
            if value is not None and _split(value)[0] in _FINAL_ACTIONS:
                self.closed = True
            return value
        return lookup


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


__all__ = ["ChecksGate", "ContentAction", "DEFAULT_REJECT_TEXT", "KEEP", "Verdict", "dsn_warning",
           "log_text", "screened",
           "table_problem", "verdict"]
