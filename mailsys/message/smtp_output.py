"""smtp_output - what the smtp and lmtp clients change in a message on its way out.

SYNOPSIS
    out = OutputRewrite.from_config(cfg, open_table, is_local, program="smtp")
    if out is not None:                             # None: nothing configured
        sender = out.address(sender, warn)          # MAIL FROM
        rcpt = out.address(rcpt, warn)              # each RCPT TO
        content, notes = out.content(content)       # headers and body

DESCRIPTION
    Postfix's smtp(8) (and lmtp(8), with the lmtp_* twins) rewrites and
    inspects mail while it sends it, after the queue (smtp_proto.c
    smtp_header_rewrite(), smtp_body_rewrite(); smtp_map11.c):

    smtp_generic_maps (generic(5))
        The envelope sender (not the null sender), each envelope recipient
        and the addresses of the primary header's sender and recipient
        headers (From:, To:, Cc:, Reply-To:, Sender:, Resent-*:,
        Return-Receipt-To:, Errors-To: ... the set cleanup's canonical
        rewriting uses, address_maps.SENDER_HEADERS and RECIPIENT_HEADERS)
        are looked up once each, no recursion, with mail_addr_find()'s key
        order: user+ext@domain, user@domain, user+ext and user (when the
        domain is $myorigin or one of this host's), @domain. A result
        "@domain" keeps the user part; an unqualified result gets
        @$myorigin; an extension the matching key left out is carried
        into the result only when propagate_unmatched_extensions names
        "generic" (an @domain match keeps the address whole). A header
        in which some address was found is written again the way Postfix
        writes it (address_list.fold_address_list(): white space
        normalized, lines joined up to 70 columns); a header in which none
        was found goes out as it came, byte for byte. Attached messages
        and MIME part headers are left alone, and the body is not even
        parsed as MIME for generic maps alone. The whole header is parsed:
        header_address_token_limit, which cuts a header cleanup rewrites,
        does not apply here (smtp_proto.c parses with tok822_parse();
        Postfix 3.7.11 rewrote an address past the limit).

    smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks,
    smtp_body_checks (header_checks(5))
        Each primary header is looked up in smtp_header_checks, except the
        MIME headers (Content-*, MIME-Version), which go to
        smtp_mime_header_checks as Postfix's header_body_checks.c does; the
        headers of each MIME part go to smtp_mime_header_checks, those of
        an attached message to smtp_nested_header_checks, each non-empty
        body line (boundary lines included, no size limit) to
        smtp_body_checks (mime_checks.check_body()). Header checks run
        before the generic mapping of the same header, which then sees the
        REPLACE text. Only actions that leave delivery alone exist here:

          WARN [text], INFO [text]   logged: "QID: warning: header
                                     Subject: x: text" (the header or line
                                     cut at 60 characters, a newline shown
                                     as "?")
          REPLACE text               the header or line becomes text; logged
                                     as "QID: replace: header ...: text"
          PREPEND text               text goes before it; "QID: prepend: ..."
          IGNORE                     removed, not logged
          DUNNO, OK                  nothing

        Any other action (REJECT, HOLD, DISCARD, FILTER, ...) logs
        "warning: unsupported command in smtp_header_checks map: REJECT
        text" and changes nothing; a REPLACE or PREPEND without text, or
        one whose header text is not "name: value", logs Postfix's
        warning and changes nothing. All of it seen live with Postfix
        3.7.11.

    The message's BODY= and SMTPUTF8 request are not changed by any of
    this (Postfix keeps the queue file's encoding and SMTPUTF8 flags), and
    nothing is converted to 7bit. Pure: tables are objects with
    lookup(key) -> str | None; the log lines come back as Note values for
    the caller to log.

SEE ALSO
    Postfix generic(5), header_checks(5), ADDRESS_REWRITING_README
    "Generic mapping for outgoing SMTP mail"; address_maps.AddressMaps,
    header_checks.verdict(), mime_checks.check_body().
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence

from mailsys.frozen import frozen

from .address_list import fold_address_list, list_elements, rewrite_addresses
from .address_maps import RECIPIENT_HEADERS, SENDER_HEADERS, AddressMaps, AliasError, Table
from .header_checks import verdict
from .message_actions import first_answer
from .mime_checks import Check, check_body

__all__ = ["MIME_HEADERS", "Note", "OutputError", "OutputRewrite", "PARAMETERS"]

# The parameters that turn output rewriting on (smtp_* names; lmtp reads
# its lmtp_* twins under these names, config.client_program).
PARAMETERS = ("smtp_generic_maps", "smtp_header_checks", "smtp_mime_header_checks",
              "smtp_nested_header_checks", "smtp_body_checks")

# header_opts.c: the headers with HDR_OPT_MIME, which header_body_checks.c
# looks up in the MIME header checks even in the primary header.
MIME_HEADERS = frozenset((
    "content-description", "content-disposition", "content-id", "content-transfer-encoding",
    "content-type", "mime-version"))
_ADDRESS_HEADERS = SENDER_HEADERS | RECIPIENT_HEADERS
_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")      # mime_state.c's header name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN = 60                                        # smtp_hbc_logger(): "%.60s"
_ACTION = re.compile(r"(\S*)\s*(.*)", re.DOTALL)


class OutputError(Exception):
    """A generic map gave something that is no address (Postfix's smtp
    client stops with "map lookup problem"); str() is the warning."""


@frozen
class Note:
    """One log line: ``text`` at ``level`` ("info" or "warning"), after
    "QID: " when ``queue_id`` (the check's actions), without it otherwise
    (the table's own warnings)."""

    level: str
    text: str
    queue_id: bool = True


@frozen
class OutputRewrite:
    """The smtp client's output rewriting; see the module description."""

    maps: AddressMaps                      # lookup settings for generic
    generic: Sequence[Table] = ()
    header_checks: Check | None = None
    mime_header_checks: Check | None = None
    nested_header_checks: Check | None = None
    body_checks: Check | None = None
    program: str = "smtp"                  # names the tables in warnings

    @classmethod
    def from_config(cls, cfg, open_table: Callable[[str], Table],
                    is_local: Callable[[str], bool], program: str = "smtp"
                    ) -> OutputRewrite | None:
        """The settings of a client Config (smtp_* names; for lmtp the
        client_program view), or None when no table is configured."""
        if not any(cfg[name] for name in PARAMETERS):
            return None
        opened: dict[str, Table] = {}

        def tables(name: str) -> list[Table]:
            for spec in cfg[name]:
                if spec not in opened:
                    opened[spec] = open_table(spec)
            return [opened[spec] for spec in cfg[name]]
        myorigin = cfg.myorigin.lower()
        maps = AddressMaps(myorigin=cfg.myorigin, delimiter=cfg.recipient_delimiter,
                           propagate=frozenset(cfg.propagate_unmatched_extensions),
                           is_local=lambda d: d.lower() == myorigin or is_local(d))
        return cls(maps=maps, generic=tuple(tables("smtp_generic_maps")),
                   header_checks=first_answer(tables("smtp_header_checks")),
                   mime_header_checks=first_answer(tables("smtp_mime_header_checks")),
                   nested_header_checks=first_answer(tables("smtp_nested_header_checks")),
                   body_checks=first_answer(tables("smtp_body_checks")), program=program)

    def _title(self, param: str) -> str:
        return f"{self.program}_{param}"

    # -- the envelope --------------------------------------------------------

    def address(self, address: str, warn: Callable[[str], None]) -> str:
        """An envelope address as MAIL FROM or RCPT TO gives it ("" stays "")."""
        if not address or not self.generic:
            return address
        try:
            new = self.maps.map11(self.generic, address, "generic",
                                  self._title("generic_maps"), warn)
        except AliasError as e:
            raise OutputError(str(e)) from None
        return address if new is None else new

    # -- the content ---------------------------------------------------------

    def content(self, content: bytes) -> tuple[bytes, list[Note]]:
        """content as it goes out, and the lines to log. OutputError when a
        generic map gives something that is no address."""
        notes: list[Note] = []
        header = self._restricted(self.header_checks, "header_checks", "header", notes)
        mime = self._restricted(self.mime_header_checks, "mime_header_checks", "header", notes)
        edits: list[tuple[int, int, bytes]] = []
        content_type = ""
        pos, n = 0, len(content)
        while pos < n and (m := _NAME.match(content, pos)) is not None:
            end = content.find(b"\n", pos)
            end = n if end < 0 else end + 1
            while end < n and content[end:end + 1] in (b" ", b"\t"):
                nxt = content.find(b"\n", end)
                end = n if nxt < 0 else nxt + 1
            raw = content[pos:end]
            text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n").replace("\r\n", "\n")
            name = m.group(1).decode("ascii").lower()
            if name == "content-type":
                content_type = text.split(":", 1)[1]
            new = self._header(name, raw, text, mime if name in MIME_HEADERS else header, notes)
            if new is not None:
                edits.append((pos, end, new))
            pos = end
        if self.mime_header_checks or self.nested_header_checks or self.body_checks:
            found = check_body(
                content[pos:], content_type, mime=mime,
                nested=self._restricted(self.nested_header_checks, "nested_header_checks",
                                        "header", notes),
                lines=self._restricted(self.body_checks, "body_checks", "body", notes),
                limit=sys.maxsize)
            edits += [(start + pos, end + pos, new) for start, end, new in found.edits]
        if not edits:
            return content, notes
        out, at = [], 0
        for start, end, new in edits:
            out += (content[at:start], new)
            at = end
        out.append(content[at:])
        return b"".join(out), notes

    def _header(self, name: str, raw: bytes, text: str, check: Check | None,
                notes: list[Note]) -> bytes | None:
        """The bytes that stand for one primary header, or None: unchanged."""
        eol = raw[len(raw.rstrip(b"\r\n")):] or b"\n"
        before = b""
        changed = False
        if check is not None and (value := check(text)) is not None:
            v = verdict(value, text)
            if v.edit == "ignore":
                return b""
            if v.edit == "prepend":
                before = _encode(v.line, eol)
            elif v.edit == "replace":
                text, changed = v.line, True
        if self.generic and name in _ADDRESS_HEADERS:
            rewritten = self._rewrite_header(text, notes)
            if rewritten is not None:
                text, changed = rewritten, True
        if not changed:
            return before + raw if before else None
        return before + _encode(text, eol)

    def _rewrite_header(self, text: str, notes: list[Note]) -> str | None:
        """The header with generic_maps applied to its addresses, written
        again as Postfix writes it; None when no address was found."""
        colon = text.find(":")
        if colon < 0:
            return None
        found = False

        def one(address: str) -> str:
            nonlocal found
            try:
                new = self.maps.map11(self.generic, address, "generic",
                                      self._title("generic_maps"),
                                      lambda w: notes.append(Note("warning", w, False)))
            except AliasError as e:
                raise OutputError(str(e)) from None
            if new is None:
                return address
            found = True
            return new
        value = rewrite_addresses(text[colon + 1:], one)
        if not found:
            return None
        return fold_address_list(text[:colon].rstrip(), list_elements(value))

    def _restricted(self, check: Check | None, param: str, where: str,
                    notes: list[Note]) -> Check | None:
        """check, limited to the smtp client's actions and logging them as
        its smtp_hbc_logger() does (hbc_action() in header_body_checks.c)."""
        if check is None:
            return None
        title = self._title(param)

        def lookup(text: str) -> str | None:
            value = check(text)
            if value is None:
                return None
            m = _ACTION.match(value.strip())
            assert m is not None
            action, args = m.group(1).upper(), m.group(2)
            if action in ("WARN", "INFO"):
                notes.append(Note("info", _logged("warning" if action == "WARN" else "info",
                                                   where, text, args)))
                return None
            if action in ("REPLACE", "PREPEND"):
                if not args:
                    notes.append(Note("warning", f"{action} action without text in {title} map",
                                      False))
                    return None
                if not verdict(value, text, where).edit:
                    notes.append(Note("warning", f'bad {action} header text "{args}" in {title} '
                                      'map -- need "headername: headervalue"', False))
                    return None
                notes.append(Note("info", _logged(action.lower(), where, text, args)))
                return value
            if action == "STRIP":
                notes.append(Note("info", _logged("strip", where, text, args)))
                return "IGNORE"                 # the same, logged
            if action == "IGNORE":
                return value                    # not logged, as in cleanup
            if action in ("DUNNO", "OK"):
                return None
            notes.append(Note("warning", f"unsupported command in {title} map: {value}", False))
            return None
        return lookup


def _logged(action: str, where: str, text: str, args: str) -> str:
    """smtp_hbc_logger(): "warning: header Subject: x: text" (after "QID: ")."""
    shown = text.encode("utf-8", "surrogateescape")[:_SHOWN].decode("utf-8", "ignore")
    shown = _CONTROL.sub("?", shown)
    return f"{action}: {where} {shown}: {args}" if args else f"{action}: {where} {shown}"


def _encode(text: str, eol: bytes) -> bytes:
    """A header's text (continuation lines joined by "\\n") as lines ending in eol."""
    data = text.encode("utf-8", "surrogateescape")
    if eol != b"\n":
        data = data.replace(b"\n", eol)
    return data + eol
