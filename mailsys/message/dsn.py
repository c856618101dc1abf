"""dsn - RFC 3464 delivery status notifications, laid out as Postfix writes them.

SYNOPSIS
    from mailsys.message.dsn import Kind, NoticeSettings, build_notice, wants_notice
    settings = NoticeSettings.from_config(cfg)
    rcpts = [r for r in env.recipients if r.state is RcptState.BOUNCED
             and not r.notified and wants_notice(r, Kind.FAILURE)]
    notice = build_notice(Kind.FAILURE, env, content, rcpts, settings, now=time.time())
    # queue `notice` with the null sender <> to env.sender
    copy = build_notice(Kind.FAILURE, env, content, rcpts, settings, now=...,
                        postmaster="postmaster")   # sender: double_bounce_sender

DESCRIPTION
    build_notice() turns a queue entry's envelope, its stored content and the
    recipients to report into the bytes of one notice message, CRLF line
    ends, ready for cleanup. It is Postfix's bounce daemon's layout
    (src/bounce/bounce_notify_util.c, the built-in templates of
    bounce_templates.c as Postfix 3.7 words them), checked against live
    Postfix 3.7.11 notices (postfix-compat.md section 5):

        Date, From: (the template's, qualified with @$myorigin: built in
        "Mail Delivery System <MAILER-DAEMON@$myorigin>"), Subject,
        To, with enable_threaded_bounces References and In-Reply-To (the
        original's Message-ID), Auto-Submitted, MIME-Version, Content-Type: multipart/report;
        report-type=delivery-status with the boundary
        "<queue ID>.<unix time>/<myhostname>"

        part 1  text/plain "Notification": the bounce(5) template text
                (mailsys.message.bounce_templates: the built-in templates, or
                $bounce_template_file's, in the template's charset), then
                per recipient "<rcpt>: reason" (or "<rcpt> (expanded from
                <orig>): reason"), wrapped at 79 columns with a 4-space
                continuation indent (Postfix line_wrap())
        part 2  message/delivery-status "Delivery report": Reporting-MTA,
                Original-Envelope-Id (only with ENVID), X-<mail_name>-Queue-ID,
                X-<mail_name>-Sender, Arrival-Date; per recipient
                Final-Recipient, Original-Recipient, Action, Status,
                Remote-MTA, Diagnostic-Code, Will-Retry-Until (delay only)
        part 3  the original: message/rfc822 "Undelivered Message" when RET
                is not HDRS and it fits in bounce_size_limit, otherwise
                text/rfc822-headers "Undelivered Message Headers"; delay
                notices and postmaster copies always send headers only;
                success reports drop the "Undelivered " prefix

    The words "Postfix" in Postfix's notices come from $mail_name, as they do
    here: the X-Postfix-Queue-ID / X-Postfix-Sender field names and the
    "X-Postfix" diagnostic type are "X-$mail_name-..." in bounce_notify_util.c.
    mailsys's mail_name is "mailsys", so a mailsys notice says
    X-mailsys-Queue-ID; an administrator whose DSN-parsing scripts want the
    Postfix spelling sets mail_name = Postfix. Nothing else differs: the
    template text itself never names the mail system ("This is the mail
    system at host ...", signed "The mail system").

    An 8-bit original (BODY=8BITMIME, SMTPUTF8, or 8-bit bytes in the
    content) gets "Content-Transfer-Encoding: 8bit" on the message, on part
    1 (whose charset becomes utf-8) and on part 3, and on part 2 only for
    SMTPUTF8, as Postfix does; BODY=7BIT gives the top-level "7bit" that
    Postfix writes. An SMTPUTF8 original gets the RFC 6533 types
    message/global-delivery-status, message/global and message/global-headers
    and "utf-8" address types for non-ASCII addresses.

    Dates use Postfix 3.7's mail_date() (mailsys.message.dates): a
    space-padded day, "Wed,  2 Dec 2026 00:23:06 +0000 (UTC)".

    Which recipients to report is the caller's choice; wants_notice() is
    Postfix's NOTIFY filter. Cleanup adds Message-Id and Received to the
    notice as to any message; this module adds neither.

    Pure (no trio, sockets or queue): NoticeSettings.from_config() reads
    $bounce_template_file, and nothing else here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from datetime import tzinfo
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Sequence

from mailsys.config.params import param
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.message.address import quote_822_local
from mailsys.message.address_list import rewrite_addresses
from mailsys.message.bounce_templates import (DEFAULTS, Template, TemplateError, config_lookup,
                                              expand_text, parse_templates)
from mailsys.message.dates import mail_date
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.message.headers import header_end, to_crlf

__all__ = ["Kind", "NoticeSettings", "TemplateError", "address_type", "build_notice",
           "wants_notice", "line_wrap", "MAILER_DAEMON"]

MAILER_DAEMON = "MAILER-DAEMON"

# bounce_notify_util.c bounce_print_wrap(): LENGTH 79, INDENT 4.
WRAP_LENGTH = 79
WRAP_INDENT = 4


class Kind(str, Enum):
    """Which notice: the bounce(5) template classes mailsys sends."""

    FAILURE = "failure"
    DELAY = "delay"
    SUCCESS = "success"
    VERIFY = "verify"        # sendmail -bv's report on every recipient


# bounce_notify_util.c: the diagnostic type is an RFC 822 atom made from
# mail_name by turning specials and white space into "-".
_NOT_ATOM = re.compile(r'[ \t\r\n()<>@,;:\\".\[\]]')
# bounce_log_read() masks control characters before text reaches a notice.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# line_wrap() breaks only at these (strcspn(word, " \t")).
_BLANK = re.compile(r"[ \t]")


@frozen
class NoticeSettings:
    """The main.cf values a notice depends on (times in seconds).

    tz is the zone dates are written in: None is the process's local zone,
    as Postfix's localtime(); tests pin it.
    """

    myhostname: str
    myorigin: str
    mail_name: str = "mailsys"
    bounce_size_limit: int = 50000
    delay_warning_time: float = 0.0
    maximal_queue_lifetime: float = 5 * 86400.0
    tz: tzinfo | None = None
    threaded: bool = False               # enable_threaded_bounces
    # bounce_template_file's templates over the built-in ones, the file's
    # name for messages, and the $name lookup of their text (main.cf's
    # values; None: only the names the built-in texts use, from the fields).
    templates: Mapping[str, Template] = field(default_factory=lambda: DEFAULTS)
    template_file: str = ""
    lookup: Callable[[str], str | None] | None = field(default=None, compare=False)

    @classmethod
    def from_config(cls, cfg: Any, tz: tzinfo | None = None,
                    warn: Callable[[str], None] = lambda text: None) -> NoticeSettings:
        """The settings from a mailsys.config.Config; warn gets the template
        file's warnings, among them a template that names an unknown $name
        (replaced by the built-in one). An unreadable file is a ConfigError."""
        file = cfg.bounce_template_file
        templates = DEFAULTS
        if file:
            path = Path(cfg.path("bounce_template_file"))
            try:
                text = path.read_text(encoding="utf-8", errors="surrogateescape")
            except OSError as e:
                raise ConfigError(f"open {path}: {e.strerror}") from None
            templates = parse_templates(text, str(path), warn)
        settings = cls(myhostname=cfg.myhostname, myorigin=cfg.myorigin,
                       mail_name=cfg.mail_name, bounce_size_limit=cfg.bounce_size_limit,
                       delay_warning_time=cfg.delay_warning_time,
                       maximal_queue_lifetime=cfg.maximal_queue_lifetime, tz=tz,
                       threaded=cfg.enable_threaded_bounces,
                       templates=templates, template_file=str(file),
                       lookup=config_lookup(cfg, param_type))
        # A $name main.cf does not know stops Postfix's bounce daemon; here
        # the built-in template stands in, so that notices still go out.
        for kind in Kind:
            try:
                settings.text(kind)
            except TemplateError as e:
                warn(f"{e} -- using the built-in {kind.value} template")
                settings = replace(settings, templates={**settings.templates,
                                                        kind.value: DEFAULTS[kind.value]})
        return settings

    def text(self, kind: Kind) -> tuple[str, ...]:
        """The template text of kind, expanded (TemplateError: an unknown $name)."""
        return expand_text(self.templates[kind.value], self.lookup or self._own_value,
                           self.template_file)

    def _own_value(self, name: str) -> str | None:
        return {"myhostname": self.myhostname, "myorigin": self.myorigin,
                "mail_name": self.mail_name,
                "delay_warning_time_hours": str(int(self.delay_warning_time) // 3600),
                "maximal_queue_lifetime_days": str(int(self.maximal_queue_lifetime) // 86400),
                }.get(name)


def wants_notice(rcpt: Recipient, kind: Kind) -> bool:
    """wants_notice - whether the recipient's NOTIFY asks for this kind of notice.

    Without NOTIFY every failure and delay is reported (Postfix's "compat"
    rule), and success only when asked for; NOTIFY=NEVER asks for nothing.
    """
    if kind is Kind.VERIFY:
        return True                   # the sender asked for it (sendmail -bv)
    wanted = {Kind.FAILURE: Notify.FAILURE, Kind.DELAY: Notify.DELAY,
              Kind.SUCCESS: Notify.SUCCESS}[kind]
    if not rcpt.notify:
        return kind is not Kind.SUCCESS
    return wanted in rcpt.notify


def line_wrap(text: str, length: int = WRAP_LENGTH, indent: int = WRAP_INDENT) -> list[str]:
    """line_wrap - Postfix's line_wrap(3): break at blanks so lines fit in length.

    Continuation lines are indented by indent blanks and must then fit in
    length - indent. A word longer than a line stays whole. Trailing blanks
    of a broken line and leading blanks of the next are dropped.
    """
    lines: list[str] = []
    curr_indent, curr_len = 0, length
    start = word = 0
    while True:
        blank = _BLANK.search(text, word)
        next_space = blank.start() if blank else len(text)
        if word > start and next_space - start > curr_len:
            lines.append(" " * curr_indent + text[start:word].rstrip())
            word = len(text) - len(text[word:].lstrip())
            if start == 0:
                curr_indent += indent
                curr_len -= indent
            start = word
        if blank is None:
            break
        word = next_space + 1
    lines.append(" " * curr_indent + text[start:].rstrip())
    return lines


def _orig(rcpt: Recipient) -> str:
    """The original recipient a notice names: none when it differs from
    the address only in case (Postfix's bounce log keeps it only when
    strcasecmp_utf8() finds a difference: bounce_append_service.c)."""
    if rcpt.orig and rcpt.orig.casefold() != rcpt.address.casefold():
        return rcpt.orig
    return ""


def _printable(text: str) -> str:
    return _CONTROL.sub("?", text)


def _is_utf8_address(addr: str) -> bool:
    return bool(addr) and not addr.isascii()


def address_type(address: str, smtputf8: bool) -> str:
    """The DSN address type of address (RFC 6533): "utf-8" for a
    non-ASCII one in SMTPUTF8 mail, else "rfc822"."""
    return "utf-8" if smtputf8 and _is_utf8_address(address) else "rfc822"


def _mime_encoding(env: Envelope, content: bytes) -> str | None:
    """Postfix's bounce_info->mime_encoding: "8bit", "7bit" or None (not known)."""
    if env.smtputf8 or env.body_type.upper() == "8BITMIME" or not content.isascii():
        return "8bit"
    if env.body_type.upper() == "7BIT":
        return "7bit"
    return None


def _action(kind: Kind, rcpt: Recipient) -> str:
    if kind is Kind.FAILURE:
        return "failed"
    if kind is Kind.DELAY:
        return "delayed"
    if kind is Kind.VERIFY:
        # Postfix's words for a trace-only delivery (verify_append()).
        return "deliverable" if rcpt.state is RcptState.SENT else "undeliverable"
    # RFC 3464 2.3.3: "relayed" when the next system (a remote MTA) takes the
    # message on without promising a success notice; "delivered" when it
    # reached the mailbox here. An agent that knows better says so (pipe(8)
    # is "relayed" unless its flag X says final delivery).
    return rcpt.action or ("relayed" if rcpt.remote_mta else "delivered")


def _typed(value: str, default_type: str) -> tuple[str, str]:
    """("smtp", "550 ...") from "smtp; 550 ..."; (default_type, value) without a type."""
    kind, semi, rest = value.partition(";")
    if semi and kind.strip() and " " not in kind.strip():
        return kind.strip(), rest.strip()
    return default_type, value.strip()


def build_notice(kind: Kind, env: Envelope, content: bytes, recipients: Sequence[Recipient],
                 settings: NoticeSettings, *, now: float, postmaster: str | None = None,
                 full: bool = False, to: str | None = None,
                 warn: Callable[[str], None] | None = None) -> bytes:
    """build_notice - the notice message, CRLF line ends, to send with the null sender.

    kind         failure (bounce), delay (warning), success (NOTIFY=SUCCESS)
                 or verify (sendmail -bv: every recipient, deliverable or not)
    env          the original entry's envelope: sender, queue_id,
                 arrival_time, envid, ret, body_type, smtputf8
    content      the original message as stored (header and body)
    recipients   the recipients to report, with their dsn_status, reason,
                 remote_mta, diagnostic ("smtp; 550 ...") and orig / orcpt
    now          the notice time: its Date and its MIME boundary
    postmaster   None for the notice to the sender (To: env.sender); an
                 address for Postfix's postmaster copy instead: postmaster
                 subject, "Auto-Submitted: auto-generated", no boilerplate,
                 the original's headers only. Postfix sends that copy with
                 $double_bounce_sender as its envelope sender.
    full         a postmaster copy that returns the whole message (within
                 bounce_size_limit), as Postfix's double bounce (2bounce)
                 does: the last chance of the mail to be read.
    to           the To: of a notice that is not a postmaster copy but does
                 not go to env.sender: a success report on null-sender mail
                 goes to 2bounce_notice_recipient as it would to a sender
                 (Postfix bounce_trace_service.c)
    warn         gets "ignoring malformed Message-ID" (threaded bounces)
    """
    template = settings.templates[kind.value]
    copy = postmaster is not None
    # The null sender is named MAILER-DAEMON@$myhostname in the report and
    # its Return-Path (bounce_notify_util.c, mail_addr_mail_daemon(); seen
    # live with Postfix 3.7.11).
    sender = (quote_822_local(env.sender) if env.sender
              else f"{MAILER_DAEMON}@{settings.myhostname}")
    smtputf8 = env.smtputf8
    encoding = _mime_encoding(env, content)
    eight_bit = encoding == "8bit"
    mail_name = _NOT_ATOM.sub("-", settings.mail_name)
    boundary = f"{env.queue_id}.{int(now)}/{settings.myhostname}"
    arrival = int(env.arrival_time)
    tz = settings.tz
    out: list[str] = []
    add = out.append

    # Message header (bounce_header).
    add(f"Date: {mail_date(now, tz)}")
    add("From: " + rewrite_addresses(
        template.sender, lambda a: a if "@" in a else f"{a}@{settings.myorigin}"))
    add(f"Subject: {template.postmaster_subject if copy else template.subject}")
    add(f"To: {quote_822_local(postmaster if copy else to or env.sender)}")
    if settings.threaded:
        msgid = _original_message_id(content, warn or (lambda text: None))
        if msgid:
            add(f"References: {msgid}")
            add(f"In-Reply-To: {msgid}")
    add(f"Auto-Submitted: {'auto-generated' if copy else 'auto-replied'}")
    add("MIME-Version: 1.0")
    add("Content-Type: multipart/report; report-type=delivery-status;")
    add(f'\tboundary="{boundary}"')
    if encoding:
        add(f"Content-Transfer-Encoding: {encoding}")
    add("")
    add("This is a MIME-encapsulated message.")

    # Part 1: the human-readable notification.
    add("")
    add(f"--{boundary}")
    add("Content-Description: Notification")
    text = settings.text(kind) if not copy else ()
    own_charset = template.charset.lower() != "us-ascii"
    charset = template.charset if own_charset else "utf-8" if eight_bit else "us-ascii"
    add(f"Content-Type: text/plain; charset={charset}")
    if eight_bit or not all(line.isascii() for line in text):
        add("Content-Transfer-Encoding: 8bit")
    add("")
    out.extend(text)
    for rcpt in recipients:
        add("")
        reason = _printable(rcpt.reason)
        orig = _orig(rcpt)
        if orig:
            out.extend(line_wrap(f"<{rcpt.address}> (expanded from <{orig}>): {reason}"))
        else:
            out.extend(line_wrap(f"<{rcpt.address}>: {reason}"))

    # Part 2: the machine-readable delivery report.
    add("")
    add(f"--{boundary}")
    add("Content-Description: Delivery report")
    add(f"Content-Type: message/{'global-' if smtputf8 else ''}delivery-status")
    if eight_bit and smtputf8:
        add("Content-Transfer-Encoding: 8bit")
    add("")
    add(f"Reporting-MTA: dns; {settings.myhostname}")
    if env.envid:
        add(f"Original-Envelope-Id: {env.envid}")
    add(f"X-{mail_name}-Queue-ID: {env.queue_id}")
    add(f"X-{mail_name}-Sender: {address_type(sender, smtputf8)}; {sender}")
    if arrival > 0:
        add(f"Arrival-Date: {mail_date(arrival, tz)}")
    for rcpt in recipients:
        out.extend(_recipient_fields(kind, rcpt, smtputf8, mail_name, settings, arrival))

    # Part 3: the original message, or its headers.
    # Postfix's defaults when RET is not given: the whole message in a
    # bounce, headers in a success report (bounce_trace_service.c); a delay
    # warning and a postmaster copy always carry headers only.
    ret = env.ret.upper() or ("HDRS" if kind in (Kind.SUCCESS, Kind.VERIFY) else "FULL")
    if copy and full:
        ret = "FULL"
    headers_only = ((copy and not full) or kind is Kind.DELAY or ret == "HDRS"
                    or not 0 < len(content) <= settings.bounce_size_limit)
    add("")
    add(f"--{boundary}")
    undelivered = "" if kind in (Kind.SUCCESS, Kind.VERIFY) else "Undelivered "
    add(f"Content-Description: {undelivered}Message{' Headers' if headers_only else ''}")
    if smtputf8:
        add(f"Content-Type: message/{'global-headers' if headers_only else 'global'}")
    else:
        add(f"Content-Type: {'text/rfc822-headers' if headers_only else 'message/rfc822'}")
    if eight_bit:
        add("Content-Transfer-Encoding: 8bit")
    add("")
    # cleanup drops Return-Path from what it stores; bounce puts one back
    # so header_checks on the notice see it (bounce_original()).
    add(f"Return-Path: <{sender}>")
    head = "\r\n".join(out).encode("utf-8", "surrogateescape") + b"\r\n"
    original = to_crlf(content[:header_end(content)] if headers_only else content)
    if original and not original.endswith(b"\r\n"):
        original += b"\r\n"
    tail = f"\r\n--{boundary}--\r\n".encode("ascii", "surrogateescape")
    return head + original + tail


def _original_message_id(content: bytes, warn: Callable[[str], None]) -> str:
    """The original's Message-ID for a threaded bounce, as Postfix's
    bounce_mail_init() finds it: the last Message-ID header whose first
    line holds the whole <...> value; another one is warned about."""
    found = ""
    for line in content[:header_end(content)].decode("utf-8", "surrogateescape").splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip(" \t").lower() == "message-id" and name[:1] not in " \t":
            value = value.strip(" \t")
            if value.startswith("<") and value.endswith(">"):
                found = value
            else:
                warn("ignoring malformed Message-ID")
    return found


def _recipient_fields(kind: Kind, rcpt: Recipient, smtputf8: bool, mail_name: str,
                      settings: NoticeSettings, arrival: int) -> Iterable[str]:
    """The per-recipient block of the delivery report (bounce_recipient_dsn)."""
    # Every value as the bounce server neuters it (bounce.c VS_NEUTER):
    # an ORCPT's xtext may decode to CR LF, which must not start a field.
    yield ""
    yield f"Final-Recipient: {address_type(rcpt.address, smtputf8)}; {_printable(rcpt.address)}"
    # Postfix always reports an Original-Recipient: the stored ORCPT as is
    # (smtpd synthesizes "rfc822;addr", no space), else the pre-rewrite address.
    orig = _orig(rcpt)
    if rcpt.orcpt:
        yield f"Original-Recipient: {_printable(rcpt.orcpt)}"
    elif orig:
        yield f"Original-Recipient: {address_type(orig, smtputf8)}; {_printable(orig)}"
    yield f"Action: {_action(kind, rcpt)}"
    yield f"Status: {_printable(rcpt.dsn_status)}"
    if rcpt.remote_mta:
        mtype, mname = _typed(_printable(rcpt.remote_mta), "dns")
        yield from line_wrap(f"Remote-MTA: {mtype}; {mname}")
    if rcpt.diagnostic:
        dtype, dtext = _typed(rcpt.diagnostic, "smtp")
        yield from line_wrap(f"Diagnostic-Code: {dtype}; {_printable(dtext)}")
    else:
        yield from line_wrap(f"Diagnostic-Code: X-{mail_name}; {_printable(rcpt.reason)}")
    if kind is Kind.DELAY:
        yield f"Will-Retry-Until: {mail_date(arrival + settings.maximal_queue_lifetime, settings.tz)}"


def param_type(name: str) -> str | None:
    """The type name of a main.cf parameter ("Time", "Int", ...), or None."""
    p = param(name)
    return None if p is None else p.type.name
