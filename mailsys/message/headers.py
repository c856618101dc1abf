"""headers - what cleanup does to the primary header of a message (Postfix cleanup(8)).

SYNOPSIS
    result = clean_header(content, policy=HeaderPolicy.from_config(cfg),
                          received=received_smtp(...), queue_id=qid,
                          arrival=t, sender=sender, add_missing=local)
    if result.error: reply with result.error (554 5.4.0 Error: too many hops)
    stored = result.assemble(content)       # what goes into the queue

DESCRIPTION
    Input is the message content as received: header and body, line ends
    CRLF or bare LF (smtpd under smtpd_forbid_bare_newline = normalize, the
    sendmail command), already dot-unstuffed. Only the primary header block
    is looked at; the body is never split into lines, so a 50 MB body costs
    two C-speed counts and one copy in ``assemble``.

    Canonical storage form: CRLF line ends throughout. SMTP delivery needs
    CRLF on the wire, and mailq / qmgr sizes are the CRLF-counted content
    size (postfix-compat.md section 3.1), so ``len(result.assemble(content))``
    is the message_size that mailq, postqueue -j and qmgr's ``size=`` show.
    A bare CR inside a line is data and is kept.

    The header block is the longest run of header fields at the start of the
    content: a line ``name: value`` (name: printable ASCII except ":"; white
    space before the colon is the obsolete syntax and is removed) followed by
    its continuation lines (starting with space or tab). The first line that
    is neither ends it: normally the empty separator line, but it may be a
    body line, which is then kept right after the headers as Postfix keeps it.
    When the content's very first line starts with white space, an empty line
    is put in front of it so it cannot continue our own headers (smtpd.c
    does the same).

    What happens, in Postfix's order (cleanup_message.c):

    * smtpd's (or pickup's) ``Received:`` header goes first, after only the
      header lines of smtpd's PREPEND actions (``prepend``), as Postfix's
      smtpd writes them before its own.
    * Each ``Received:`` header counts one hop, ours included; when the count
      reaches ``hopcount_limit`` (50) the message is refused with
      ``554 5.4.0 Error: too many hops`` and the warning
      ``QID: message rejected: hopcount exceeded``. A message that arrives
      with 49 Received: headers is refused; one with 48 passes.
    * A header longer than ``header_size_limit`` (102400) is cut: text past
      the limit is discarded and the message is accepted (cleanup ignores
      the truncation error after the primary header, as Postfix does). The
      cut point follows Postfix: continuation lines are added while the
      header is below the limit, and a long line counts in pieces of
      line_length_limit (2048) bytes, smtpd's record size.
    * With ``check`` (header_checks), each header is first looked up as
      header_checks.py describes: it may be removed, replaced or preceded
      by another line, the message refused, and the other actions are
      returned for cleanup (``actions``). After a REJECT or DISCARD no
      further header is looked up.
    * Headers named in ``message_drop_headers`` (Postfix >= 3.0 default
      ``bcc, content-length, resent-bcc, return-path``) are removed. Delivery
      agents add Return-Path themselves (RFC 5321 4.4).
    * Each ``Message-Id:`` is logged as ``QID: message-id=<value>``, each
      ``Resent-Message-Id:`` as ``QID: resent-message-id=<value>``.
    * Missing headers are added after the existing ones, only when
      ``add_missing`` is true (below): ``Message-Id: <YYYYMMDDhhmmss.QID@myhostname>``
      (UTC; ``<QID@myhostname>`` for long queue IDs, which carry their own
      time), ``Date:`` (arrival time, mail_date format), ``From:`` (the
      envelope sender, ``MAILER-DAEMON`` for <>, with the sendmail -F full
      name as ``From: Full Name <addr>``, or with header_from_format =
      obsolete as ``From: addr (Full Name)``, the name as given: Postfix
      3.7.11 wrote "From: joe@example.com (A (paren) \back "q")" and
      "From: joe@example.com (a(b)" for those -F names), and ``undisclosed_recipients_header``
      when there is no To:/Cc: and that parameter is set (empty by default
      since Postfix 2.8, so no ``To: undisclosed-recipients:;`` by default).
      With any Resent- header present the Resent- variants are checked and
      added instead (RFC 5322 3.6.6). Postfix writes the name ``Message-Id``
      with a lower-case d, so does mailsys.
    * When the message ends up without a Message-Id (none came, none was
      added), ``QID: message-id=<>`` is logged.

    WHEN TO ADD MISSING HEADERS. Postfix adds them when the header rewriting
    context is local, or remote with a non-empty remote_header_rewrite_domain,
    or when always_add_missing_headers = yes (default no). The context is
    local for the sendmail command and for SMTP clients that match
    local_header_rewrite_clients (default permit_inet_interfaces: the client
    connects from one of this host's own addresses), remote otherwise. So by
    default mail from remote SMTP clients gets no added Message-Id, Date or
    From, and logs ``message-id=<>`` when it has none (the live Postfix
    capture shows exactly that); mail from the sendmail command does get
    them. ``wants_missing_headers()`` computes the flag from those settings;
    the caller decides whether its client is local.

SEE ALSO
    received.py (the Received: texts), dates.py, address.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

from mailsys.frozen import frozen

from .address import phrase_text, quote_822_local
from .header_checks import KEEP, ContentAction, Verdict, verdict
from .dates import mail_date, utc_stamp
from .reply import StatusReply

__all__ = [
    "HeaderPolicy", "CleanedHeader", "clean_header", "missing_headers", "wants_missing_headers",
    "header_end", "encode_header", "to_crlf", "has_bare_lf", "bare_lf_or_dot", "TOO_MANY_HOPS",
    "HEADER_SIZE_LIMIT", "HOPCOUNT_LIMIT", "MESSAGE_DROP_HEADERS",
]

# Postfix defaults (mail_params.h DEF_HEADER_LIMIT, DEF_HOPCOUNT_LIMIT,
# DEF_DROP_HDRS; postconf(5)).
HEADER_SIZE_LIMIT = 102400
HOPCOUNT_LIMIT = 50
MESSAGE_DROP_HEADERS = ("bcc", "content-length", "resent-bcc", "return-path")

# smtpd stores a text line in records of at most line_length_limit bytes
# (default 2048); cleanup's header size check works record by record.
_RECORD_SIZE = 2048

# cleanup_strerror.c CLEANUP_STAT_HOPS: "5.4.0", "too many hops", as smtpd words it.
TOO_MANY_HOPS = StatusReply(554, "5.4.0", "Error: too many hops")

# is_header.c: a header name is printable ASCII without ":" (space before the
# colon is the obsolete form); then the value line and its continuation lines.
# A line end is "\n" with or without a CR before it; the last line of the
# content may lack one.
_HEADER = re.compile(rb"([!-9;-~]+)([ \t]*):[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*")

# What a header is to cleanup (header_opts.c): the flags we act on.
_RECEIVED, _MSGID, _RESENT_MSGID, _DATE, _FROM, _VISIBLE_RCPT = 1, 2, 4, 8, 16, 32
_RESENT = 64           # HDR_OPT_RR: a Resent- header switches to the Resent- checks
_RESENT_DATE, _RESENT_FROM = 128, 256

_KNOWN: dict[bytes, int] = {
    b"received": _RECEIVED,
    b"message-id": _MSGID,
    b"date": _DATE,
    b"from": _FROM,
    b"to": _VISIBLE_RCPT,
    b"cc": _VISIBLE_RCPT,
    b"resent-message-id": _RESENT_MSGID | _RESENT,
    b"resent-date": _RESENT_DATE | _RESENT,
    b"resent-from": _RESENT_FROM | _RESENT,
    b"resent-to": _VISIBLE_RCPT | _RESENT,
    b"resent-cc": _VISIBLE_RCPT | _RESENT,
    b"resent-bcc": _RESENT,
    b"resent-reply-to": _RESENT,
    b"resent-sender": _RESENT,
}

_CTRL = re.compile(r"[\x00-\x1f\x7f]")
_LONG_QID = re.compile(r"[^0-9A-F]")  # short IDs are upper-case hex; long ones are not


@frozen
class HeaderPolicy:
    """The main.cf parameters cleanup's header handling reads."""

    myhostname: str
    header_size_limit: int = HEADER_SIZE_LIMIT
    hopcount_limit: int = HOPCOUNT_LIMIT
    message_drop_headers: tuple[str, ...] = MESSAGE_DROP_HEADERS
    undisclosed_recipients_header: str = ""
    full_name_encoding_charset: str = "utf-8"
    header_from_format: str = "standard"

    @classmethod
    def from_config(cls, cfg: Any) -> HeaderPolicy:
        """from_config - read the parameters from a mailsys Config; absent ones keep Postfix's defaults."""
        def get(name: str, default: Any) -> Any:
            try:
                return cfg[name]
            except (KeyError, AttributeError):
                return default

        drop = get("message_drop_headers", MESSAGE_DROP_HEADERS)
        if isinstance(drop, str):
            drop = tuple(p for p in re.split(r"[\s,]+", drop) if p)
        return cls(
            myhostname=cfg["myhostname"],
            header_size_limit=int(get("header_size_limit", HEADER_SIZE_LIMIT)),
            hopcount_limit=int(get("hopcount_limit", HOPCOUNT_LIMIT)),
            message_drop_headers=tuple(drop),
            undisclosed_recipients_header=str(get("undisclosed_recipients_header", "")),
            full_name_encoding_charset=str(get("full_name_encoding_charset", "utf-8")),
            header_from_format=str(get("header_from_format", "standard")),
        )


@frozen
class CleanedHeader:
    """What clean_header decided. The stored message is ``header + content[body_offset:]`` (CRLF)."""

    header: bytes                 # the new header block, CRLF, Received: first, added headers last
    body_offset: int              # the body (with its blank separator line) starts here in content
    message_id: str               # first "<...>" from Message-Id:, or the added one; "" if none
    log_lines: tuple[str, ...]    # info texts to log after "QID: " (message-id=<...>)
    warnings: tuple[str, ...]     # warning texts to log after "warning: QID: "
    hop_count: int                # Received: headers, ours included
    truncated: int                # headers cut to header_size_limit
    error: StatusReply | None     # the reply when the message must be refused
    actions: tuple[ContentAction, ...] = ()   # header_checks actions for cleanup, in order
    content_type: str = ""        # the value of the last Content-Type: header, "" if none

    def assemble(self, content: bytes, *, crlf: bool = False) -> bytes:
        """assemble - the whole message in storage form: new header, then the body with CRLF line ends.

        crlf=True: the caller knows every line end in content is CRLF
        already (smtpd checked while it read the DATA), so the body is not
        looked at again."""
        off = self.body_offset
        if crlf or not has_bare_lf(content) \
                or content.count(b"\n", off) == content.count(b"\r\n", off):
            return b"".join((self.header, memoryview(content)[off:]))
        return self.header + to_crlf(content[off:])


def to_crlf(data: bytes) -> bytes:
    """to_crlf - every line end as CRLF: a bare LF becomes CRLF, CRLF stays, a bare CR stays data."""
    if not has_bare_lf(data):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# Every byte but CR and LF: bytes.translate(None, this) leaves the line ends.
_NOT_LINE_END = bytes(c for c in range(256) if c not in b"\r\n")
_BARE_CR = re.compile(rb"\r(?!\n)").search


def has_bare_lf(data: bytes) -> bool:
    """has_bare_lf - whether some LF in data has no CR right before it.

    Counting LF and CRLF over the whole buffer costs two full searches, the
    CRLF one slow (a two-byte pattern); this looks at the line ends alone
    (a C translate) and searches for a bare CR (a one-byte regex prefix),
    and counts only when one of those finds something unusual."""
    ends = data.translate(None, _NOT_LINE_END)
    if not ends:
        return False
    if ends.count(b"\r\n") * 2 == len(ends) and _BARE_CR(data) is None:
        # The line ends alternate CR, LF and every CR has an LF right after
        # it: each LF follows its CR directly.
        return False
    return data.count(b"\n") != data.count(b"\r\n")


# bare_lf_or_dot(data): the first LF in data that is bare or followed by a
# dot, or None. A match of two bytes is "\n." after a CR (a bare LF matches
# the first alternative). One search tells a body that needs no more than
# its final "." (no match, or only the terminator) from one that needs a
# closer look (the DATA reader, the smtp client's encoder).
bare_lf_or_dot = re.compile(rb"\n(?<!\r\n)|\n\.").search


def encode_header(text: str) -> bytes:
    """encode_header - a header from received.py ("\\n"-folded str) as CRLF-terminated wire bytes."""
    return text.replace("\n", "\r\n").encode("utf-8", "surrogateescape") + b"\r\n"


def wants_missing_headers(*, local_client: bool, remote_header_rewrite_domain: str = "",
                          always_add_missing_headers: bool = False) -> bool:
    """wants_missing_headers - Postfix's rule for adding Message-Id/Date/From (see the module text)."""
    return local_client or bool(remote_header_rewrite_domain) or always_add_missing_headers


def header_end(content: bytes) -> int:
    """header_end - offset just past the primary header block (0 when the content has none)."""
    pos = 0
    match = _HEADER.match
    while (m := match(content, pos)) is not None and m.end() > pos:
        pos = m.end()
    return pos


def _text(raw: bytes) -> str:
    """A header value as log text: unfolded, control characters shown as "?" (Postfix printable())."""
    s = raw.replace(b"\r\n", b"").replace(b"\n", b"").decode("utf-8", "replace").strip(" \t")
    return _CTRL.sub("?", s)


def _balanced_id(value: str) -> str:
    """balpar(value, "<>"): the leading "<...>" of a Message-Id value, nesting counted."""
    if not value.startswith("<"):
        return ""
    depth = 0
    for i, ch in enumerate(value):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
            if depth == 0:
                return value[: i + 1]
    return ""


def _truncate(raw: bytes, limit: int) -> tuple[bytes, bool]:
    """Cut one header the way mime_state.c does: add text while the stored header is below the limit.

    The first record of the first line is always kept; every further record
    (a continuation line, or the next line_length_limit piece of a long line)
    only while the stored length is still below ``limit``. Returns the kept
    header (CRLF) and whether anything was cut.
    """
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    kept: list[bytes] = []
    size = 0
    cut = False
    for n, line in enumerate(lines):
        if line.endswith(b"\r"):
            line = line[:-1]
        if n > 0:
            if size >= limit:
                cut = True
                break
            size += 1  # the "\n" between stored lines
        pieces = [line[:_RECORD_SIZE]]
        size += len(pieces[0])
        i = _RECORD_SIZE
        while i < len(line) and size < limit:
            pieces.append(line[i:i + _RECORD_SIZE])
            size += len(pieces[-1])
            i += _RECORD_SIZE
        cut = cut or i < len(line)
        kept.append(b"".join(pieces))
    return b"\r\n".join(kept) + b"\r\n", cut


def _from_header(prefix: str, sender: str, fullname: str, charset: str,
                 form: str = "standard") -> str:
    """The added From: header, folded as cleanup_fold_header does (join while
    under 70 columns); form "obsolete" (header_from_format): the full name
    in a comment after the address, as given, unfolded (as Postfix 3.7.11
    writes it)."""
    addr = quote_822_local(sender or "MAILER-DAEMON")
    if form == "obsolete":
        return f"{prefix}From: {addr} ({fullname})" if sender and fullname \
            else f"{prefix}From: {addr}"
    phrase = phrase_text(fullname, charset) if sender and fullname else ""
    if not phrase:
        return f"{prefix}From: {addr}"
    pieces = f"{prefix}From: {phrase}\n<{addr}>".split("\n")
    out = pieces[0]
    line_start = 0
    for piece in pieces[1:]:
        if len(out) - line_start + 1 + len(piece) < 70:
            out += " " + piece
        else:
            out += "\n\t" + piece
            line_start = len(out) - len(piece)
    return out


def clean_header(content: bytes, *, policy: HeaderPolicy, received: str, queue_id: str,
                 arrival: float, sender: str, add_missing: bool, fullname: str = "",
                 tz: tzinfo | None = None, prepend: Sequence[str] = (),
                 append: Sequence[str] = (),
                 check: Callable[[str], str | None] | None = None,
                 rewrite: Callable[[str, str], str | None] | None = None,
                 rewrite_names: frozenset[bytes] = frozenset()) -> CleanedHeader:
    """clean_header - apply cleanup's header rules to ``content``; see the module text.
    prepend: header lines to put before received (smtpd's PREPEND actions).
    append: header lines to put after the header, after the missing ones
    added (the headers milters add).
    check: header_checks, the action for one header or None (header_checks.py).
    rewrite: for the headers named in rewrite_names (lower case), after
    header_checks: (name, header text) -> the new text, or None to keep it
    (address_maps.AddressMaps.header_rewriter)."""
    out: list[bytes] = [encode_header(line) for line in prepend]
    out.append(encode_header(received))
    logs: list[str] = []
    warnings: list[str] = []
    error: StatusReply | None = None
    hops = 1
    if hops >= policy.hopcount_limit:
        error = TOO_MANY_HOPS
        warnings.append("message rejected: hopcount exceeded")
    seen = 0
    message_id = ""
    truncated = 0
    drop = frozenset(h.lower().encode("ascii") for h in policy.message_drop_headers)
    limit = policy.header_size_limit
    actions: list[ContentAction] = []
    content_type = ""

    pos = 0
    run_start = 0          # start of a run of headers copied unchanged
    match = _HEADER.match
    known = _KNOWN
    while (m := match(content, pos)) is not None and m.end() > pos:
        start, end = m.start(), m.end()
        pos = end
        if check is not None:
            v = _checked(check, content[start:end])
            if v.action is not None:
                actions.append(v.action)
                if v.action.action in ("reject", "discard"):
                    check = None            # Postfix looks no further at this message
            if v.error is not None and error is None:
                error = v.error
            if v.edit:
                out.append(content[run_start:start])
                if v.edit != "ignore":
                    out.append(encode_header(v.line))
                if v.edit != "prepend":
                    run_start = end         # removed or replaced: the header goes no further
                    continue
                run_start = start
        name = m.group(1).lower()
        if name == b"content-type":
            content_type = _text(content[m.end(2) + 1:end])
        flags = known.get(name, 0)
        seen |= flags
        if flags & _RECEIVED:
            hops += 1
            if hops >= policy.hopcount_limit and error is None:
                error = TOO_MANY_HOPS
                warnings.append("message rejected: hopcount exceeded")
        elif flags & (_MSGID | _RESENT_MSGID):
            value = _text(content[m.end(2) + 1:end])
            if flags & _MSGID:
                logs.append(f"message-id={value}")
                if not message_id:
                    message_id = _balanced_id(value)
            else:
                logs.append(f"resent-message-id={value}")
        too_long = end - start > limit and _stored_len(content, start, end) > limit
        if name in drop or too_long or m.group(2):
            out.append(content[run_start:start])
            run_start = end
            if name in drop:
                continue
            raw = content[start:end]
            if m.group(2):
                raw = m.group(1) + raw[m.end(2) - start:]
            if too_long:
                raw, cut = _truncate(raw, limit)
                truncated += cut
            out.append(raw)
        elif rewrite is not None and name in rewrite_names:
            text = content[start:end].decode("utf-8", "surrogateescape").rstrip("\r\n")
            new = rewrite(name.decode("ascii"), text.replace("\r\n", "\n"))
            if new is not None:
                out.append(content[run_start:start])
                out.append(encode_header(new))
                run_start = end
    out.append(content[run_start:pos])
    if pos > 0 and not content[pos - 1:pos] == b"\n":
        out.append(b"\r\n")

    resent = "Resent-" if seen & _RESENT else ""
    added, new_id = _missing(seen, policy=policy, queue_id=queue_id, arrival=arrival,
                             sender=sender, fullname=fullname, tz=tz) if add_missing else ((), "")
    if new_id:
        logs.append(f"{resent.lower()}message-id=<{new_id}>")
        if not resent:
            seen |= _MSGID
            if not message_id:
                message_id = f"<{new_id}>"
    if not seen & _MSGID:
        logs.append("message-id=<>")
    out.extend(encode_header(text) for text in added)

    out.extend(encode_header(line) for line in append)
    if pos == 0 and content[:1] in (b" ", b"\t"):
        # The first content line would continue our last header (smtpd.c kludge).
        out.append(b"\r\n")
    header = b"".join(out)
    if header.count(b"\n") != header.count(b"\r\n"):
        header = to_crlf(header)
    return CleanedHeader(
        header=header, body_offset=pos, message_id=message_id, log_lines=tuple(logs),
        warnings=tuple(warnings), hop_count=hops, truncated=truncated, error=error,
        actions=tuple(actions), content_type=content_type)


def _missing(seen: int, *, policy: HeaderPolicy, queue_id: str, arrival: float, sender: str,
             fullname: str, tz: tzinfo | None) -> tuple[tuple[str, ...], str]:
    """The headers to add when those in seen (the _KNOWN flags) are there,
    as texts, and the Message-Id added ("" for none)."""
    resent = "Resent-" if seen & _RESENT else ""
    added: list[str] = []
    new_id = ""
    if not seen & (_RESENT_MSGID if resent else _MSGID):
        if _LONG_QID.search(queue_id):
            new_id = f"{queue_id}@{policy.myhostname}"
        else:
            new_id = f"{utc_stamp(arrival)}.{queue_id}@{policy.myhostname}"
        added.append(f"{resent}Message-Id: <{new_id}>")
    if not seen & (_RESENT_DATE if resent else _DATE):
        added.append(f"{resent}Date: {mail_date(arrival, tz)}")
    if not seen & (_RESENT_FROM if resent else _FROM):
        added.append(_from_header(resent, sender, fullname, policy.full_name_encoding_charset,
                                  policy.header_from_format))
    if not seen & _VISIBLE_RCPT and policy.undisclosed_recipients_header:
        added.append(policy.undisclosed_recipients_header)
    return tuple(added), new_id


def missing_headers(content: bytes, *, policy: HeaderPolicy, queue_id: str, arrival: float,
                    sender: str, fullname: str = "", tz: tzinfo | None = None) -> tuple[str, ...]:
    """missing_headers - the headers clean_header(add_missing=True) would add
    to content, as texts ("\\n"-folded), in its order.

    Postfix's milters read the message from the queue file, where cleanup
    has already added these; mailsys runs the milters before cleanup, so
    they are shown these first (and, once in the content, cleanup finds
    them there and adds nothing)."""
    seen = 0
    pos = 0
    match = _HEADER.match
    while (m := match(content, pos)) is not None and m.end() > pos:
        seen |= _KNOWN.get(m.group(1).lower(), 0)
        pos = m.end()
    return _missing(seen, policy=policy, queue_id=queue_id, arrival=arrival, sender=sender,
                    fullname=fullname, tz=tz)[0]


def _checked(check: Callable[[str], str | None], raw: bytes) -> Verdict:
    """header_checks on one header: its text as one string, without the final line end."""
    text = raw.decode("utf-8", "surrogateescape").rstrip("\r\n").replace("\r\n", "\n")
    value = check(text)
    return KEEP if value is None else verdict(value, text)


def _stored_len(content: bytes, start: int, end: int) -> int:
    """The length cleanup stores for a header: its text without CRs, lines joined by one "\\n"."""
    raw = content[start:end]
    n = len(raw) - raw.count(b"\r\n")
    return n - 1 if raw.endswith(b"\n") else n
