"""replies - SMTP replies, and Postfix's canned ones word for word.

A Reply is a code, an optional RFC 3463 enhanced status code and one or more
text lines; ``render()`` gives the wire bytes (``250-`` continuation lines,
``250 `` on the last, every line CRLF-terminated, the enhanced code repeated
on each line as Postfix does).

The texts below are the ones Postfix 3.7 sends (postfix-compat.md section 2.2,
[live] unless marked; smtpd.c / smtpd_sasl_glue.c printf formats otherwise).
Functions take what varies (``$myhostname``, a queue ID); constants are for
fixed texts. Keep them exact: fail2ban, pflogsumm and client retry logic read
them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING

from mailsys.frozen import frozen

from .errors import LocalProtocolError

if TYPE_CHECKING:
    from .settings import Settings


@frozen
class Reply:
    """One SMTP reply. ``text`` is a str (one line) or a tuple of lines."""

    code: int
    enhanced: str | None
    text: str | tuple[str, ...]
    # render()'s bytes, made on first use: most replies are module
    # constants, sent thousands of times.
    _wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise LocalProtocolError(f"reply code {self.code} out of range")
        lines = (self.text,) if isinstance(self.text, str) else tuple(self.text)
        if not lines:
            raise LocalProtocolError("a reply needs at least one line")
        for line in lines:
            if "\r" in line or "\n" in line:
                raise LocalProtocolError(f"reply line contains CR or LF: {line!r}")
        object.__setattr__(self, "text", lines)
        if self.enhanced is not None:
            parts = self.enhanced.split(".")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                raise LocalProtocolError(f"bad enhanced status code {self.enhanced!r}")
            # Postfix forces the DSN class to the reply class: a 5xx reply
            # never carries 4.x.x (smtpd_check.c, "soft_bounce" handling).
            klass = str(self.code)[0]
            if parts[0] != klass:
                object.__setattr__(self, "enhanced", ".".join([klass, parts[1], parts[2]]))

    @property
    def lines(self) -> tuple[str, ...]:
        return self.text  # type: ignore[return-value]

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_intermediate(self) -> bool:
        """334 (SASL challenge) and 354 (send data): the command goes on."""
        return 300 <= self.code < 400

    @property
    def closes(self) -> bool:
        """Postfix hangs up after 221, 421 and 521."""
        return self.code in (221, 421, 521)

    def render(self) -> bytes:
        wire = self._wire
        if wire is None:
            prefix = f"{self.enhanced} " if self.enhanced else ""
            lines = self.lines
            last = len(lines) - 1
            wire = "".join(f"{self.code}{' ' if i == last else '-'}{prefix}{line}\r\n"
                           for i, line in enumerate(lines)).encode("utf-8")
            object.__setattr__(self, "_wire", wire)
        return wire

    def __str__(self) -> str:
        """One-line form for logs: ``550 5.1.1 <a@b>: Recipient address rejected: ...``."""
        prefix = f"{self.enhanced} " if self.enhanced else ""
        return f"{self.code} {prefix}" + " ".join(self.lines)


# --- greeting, session --------------------------------------------------------

def greeting(banner: str) -> Reply:
    """``220 <smtpd_banner>`` (default banner ``$myhostname ESMTP $mail_name``)."""
    return Reply(220, None, banner)


def too_many_connections(host: str, addr: str) -> Reply:
    return Reply(421, "4.7.0", f"{host} Error: too many connections from {addr}")


def too_many_errors(host: str) -> Reply:
    return Reply(421, "4.7.0", f"{host} Error: too many errors")


def access_denied(namaddr: str) -> Reply:
    """Every command but QUIT after the client restrictions refused the
    client at connect (smtpd_delay_reject = no; Postfix 3.7.11 live)."""
    return Reply(503, "5.7.0", f"Error: access denied for {namaddr}")


def timeout(host: str) -> Reply:
    return Reply(421, "4.4.2", f"{host} Error: timeout exceeded")


def bare_lf(host: str, code: int = 550) -> Reply:
    """smtpd_forbid_bare_newline = reject (code: ..._reject_code, 550; 521 hangs up)."""
    return Reply(code, "5.5.2", f"{host} Error: bare <LF> received")


OK = Reply(250, "2.0.0", "Ok")                      # RSET, NOOP
MAIL_OK = Reply(250, "2.1.0", "Ok")
RCPT_OK = Reply(250, "2.1.5", "Ok")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
BYE = Reply(221, "2.0.0", "Bye")
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
BREAK_RULES = Reply(221, "2.7.0", "Error: I can break rules, too. Goodbye.")


def helo(host: str) -> Reply:
    return Reply(250, None, host)


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def bdat_queued(size: int, queue_id: str) -> Reply:
    """The reply to BDAT LAST; ``size`` is the whole message (postfix-compat.md 2.2 [src])."""
    return Reply(250, "2.0.0", f"Ok: {size} bytes queued as {queue_id}")


def bdat_chunk_ok(size: int) -> Reply:
    """Reply to a BDAT chunk that is not the LAST one: the chunk's size
    (smtpd.c bdat_cmd(): "250 2.0.0 Ok: %ld bytes")."""
    return Reply(250, "2.0.0", f"Ok: {size} bytes")


def bdat_discarded(size: int) -> Reply:
    """Reply to a BDAT chunk read and thrown away because an earlier BDAT of
    the same message failed (smtpd.c bdat_cmd(), SMTPD_BDAT_STAT_ERROR)."""
    return Reply(551, "5.0.0", f"Discarded {size} bytes after earlier error")


def vrfy(argument: str) -> Reply:
    """``252 2.0.0 <arg>``: neither confirmed nor denied (smtpd.c vrfy_cmd)."""
    return Reply(252, "2.0.0", argument)


def auth_challenge(data: bytes) -> Reply:
    """A SASL challenge: ``334 <base64>`` (``334 `` alone for an empty one)."""
    text = base64.b64encode(data).decode("ascii")
    return Reply(334, None, text) if text else Reply(334, None, "")


def auth_failed(reason: str = "authentication failure") -> Reply:
    return Reply(535, "5.7.8", f"Error: authentication failed: {reason}")


def auth_temporary(reason: str) -> Reply:
    return Reply(454, "4.7.0", f"Temporary authentication failure: {reason}")


ETRN_OK = Reply(250, None, "Queuing started")


# Postfix 3.7's EHLO lines for XCLIENT and XFORWARD [live], attribute order included.
XCLIENT_KEYWORD = "XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT"
XFORWARD_KEYWORD = "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"


def ehlo(settings: Settings, *, tls_active: bool, xclient: bool = False,
         xforward: bool = False) -> Reply:
    """The EHLO reply in Postfix's order (postfix-compat.md 2.2):
    name, PIPELINING, SIZE, VRFY, ETRN, STARTTLS, AUTH, XVERP, XCLIENT, XFORWARD,
    ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8, CHUNKING. XCLIENT and
    XFORWARD only for a client that may use them. No enhanced codes (RFC
    2034: not on HELO/EHLO replies)."""
    s = settings
    lines = [s.hostname]
    if s.pipelining:
        lines.append("PIPELINING")
    if s.size:
        # Postfix advertises "SIZE" alone when message_size_limit is 0.
        lines.append(f"SIZE {s.message_size_limit}" if s.message_size_limit else "SIZE")
    if s.vrfy and s.vrfy_keyword:
        lines.append("VRFY")
    if s.etrn and s.etrn_keyword:
        lines.append("ETRN")
    if s.starttls and not tls_active:
        lines.append("STARTTLS")
    # smtpd.c ehlo_cmd() lists AUTH whenever SASL is active, also after a
    # successful AUTH (a second AUTH then gets 503 "already authenticated").
    mechs = s.auth_offered(tls_active=tls_active) if s.advertise_auth else ()
    if mechs:
        lines.append("AUTH " + " ".join(mechs))
        if s.broken_sasl_auth_clients:
            lines.append("AUTH=" + " ".join(mechs))
    if s.verp and s.verp_keyword:
        lines.append("XVERP")
    if xclient:
        lines.append(XCLIENT_KEYWORD)
    if xforward:
        lines.append(XFORWARD_KEYWORD)
    if s.enhancedstatuscodes:
        lines.append("ENHANCEDSTATUSCODES")
    if s.eightbitmime:
        lines.append("8BITMIME")
    if s.dsn:
        lines.append("DSN")
    if s.smtputf8:
        lines.append("SMTPUTF8")
    if s.chunking:
        lines.append("CHUNKING")
    return Reply(250, None, tuple(lines))


# --- command errors (smtpd.c) ---------------------------------------------------

BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
BAD_UTF8 = Reply(500, "5.5.2", "Error: bad UTF-8 syntax")
NOT_RECOGNIZED = Reply(500, "5.5.2", "Error: command not recognized")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
SEND_HELO_FIRST = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
NO_VALID_RCPTS = Reply(554, "5.5.1", "Error: no valid recipients")
MAIL_AFTER_BDAT = Reply(503, "5.5.1", "Error: MAIL after BDAT")
RCPT_AFTER_BDAT = Reply(503, "5.5.1", "Error: RCPT after BDAT")
DATA_AFTER_BDAT = Reply(503, "5.5.1", "Error: DATA after BDAT")
TXN_IN_PROGRESS = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
# XCLIENT / XFORWARD (smtpd.c xclient_cmd, xforward_cmd) [live 3.7.11].
XCLIENT_SYNTAX = Reply(501, "5.5.4", "Syntax: XCLIENT attribute=value...")
XFORWARD_SYNTAX = Reply(501, "5.5.4", "Syntax: XFORWARD attribute=value...")
INSUFFICIENT_AUTHORIZATION = Reply(550, "5.7.0", "Error: insufficient authorization")
XATTR_EXPECTED = Reply(501, "5.5.4", "Error: attribute=value expected")
XATTR_TOO_LONG = Reply(501, "5.5.4", "Error: attribute value too long")


def xattr_bad_syntax(attribute: str, value: str) -> Reply:
    return Reply(501, "5.5.4", f"Bad {attribute} syntax: {value}")


def xattr_bad_name(command: str, attribute: str) -> Reply:
    return Reply(501, "5.5.4", f"Bad {command} attribute name: {attribute}")


MUST_STARTTLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_ACTIVE = Reply(554, "5.5.1", "Error: TLS already active")
VRFY_DISABLED = Reply(502, "5.5.1", "VRFY command is disabled")


def helo_syntax(verb: str) -> Reply:
    """``501 Syntax: HELO hostname`` / ``501 Syntax: EHLO hostname`` (no enhanced code)."""
    return Reply(501, None, f"Syntax: {verb} hostname")


MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
RSET_SYNTAX = Reply(501, "5.5.4", "Syntax: RSET")
NOOP_SYNTAX = Reply(501, "5.5.4", "Syntax: NOOP")
VRFY_SYNTAX = Reply(501, "5.5.4", "Syntax: VRFY address")
VRFY_SYNTAX_SMTPUTF8 = Reply(501, "5.5.4", "Syntax: VRFY address [SMTPUTF8]")   # smtputf8_enable
STARTTLS_SYNTAX = Reply(501, "5.5.4", "Syntax: STARTTLS")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism")
# ETRN replies carry no enhanced status code in smtpd.c etrn_cmd().
# smtpd.c mail_cmd(): XVERP from a client smtpd_authorized_verp_clients names.
XVERP_NULL_SENDER = Reply(503, "5.5.4", "Error: XVERP requires non-null sender")


def xverp_delimiters(filter_chars: str) -> Reply:
    return Reply(501, "5.5.4", f"Error: XVERP needs two characters from {filter_chars}")


ETRN_SYNTAX = Reply(500, None, "Syntax: ETRN domain")
ETRN_BAD_DOMAIN = Reply(501, None, "Error: invalid parameter syntax")
ETRN_SEND_HELO_FIRST = Reply(503, None, "Error: send HELO/EHLO first")
ETRN_TXN_IN_PROGRESS = Reply(503, None, "Error: MAIL transaction in progress")
# BDAT without a valid count cannot be skipped, so Postfix hangs up (521),
# as it does after a BDAT when CHUNKING is not offered (smtpd.c bdat_cmd()).
BDAT_SYNTAX = Reply(521, "5.5.4", "Syntax: BDAT count [LAST]")
BDAT_NOT_IMPLEMENTED = Reply(521, "5.5.1", "Error: command not implemented")
NULL_BDAT = Reply(551, "5.7.1", "Null BDAT request")
BAD_SENDER = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SIZE = Reply(501, "5.5.4", "Bad message size syntax")
BAD_RET = Reply(501, "5.5.4", "Bad RET parameter syntax")
BAD_ENVID = Reply(501, "5.5.4", "Bad ENVID parameter syntax")
BAD_NOTIFY = Reply(501, "5.5.4", "Error: Bad NOTIFY parameter syntax")
BAD_ORCPT = Reply(501, "5.5.4", "Error: Bad ORCPT parameter syntax")
MULTIPLE_AUTH_PARAM = Reply(503, "5.5.4", "Error: multiple AUTH= options")
DSN_DISABLED = Reply(501, "5.7.1", "DSN support is disabled")
SIZE_OVERFLOW = Reply(552, "5.3.4", "Message size exceeds file system imposed limit")
NEED_SMTPUTF8 = Reply(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address")


def unsupported_option(param: str) -> Reply:
    """``555 5.5.4 Unsupported option: X=Y`` (the parameter as the client wrote it)."""
    return Reply(555, "5.5.4", f"Unsupported option: {param}")


# --- limits ---------------------------------------------------------------------

SIZE_EXCEEDS_LIMIT = Reply(552, "5.3.4", "Message size exceeds fixed limit")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Error: message file too big")
CHUNK_TOO_BIG = Reply(552, "5.3.4", "Chunk exceeds message size limit")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")

# smtpd.c: smtpd_forbid_unauth_pipelining = yes, to a client that sent more
# after a command that ends a PIPELINING group; the connection then closes.
PIPELINING_FORBIDDEN = Reply(554, "5.5.0", "Error: SMTP protocol synchronization")

# --- AUTH (smtpd_sasl_glue.c / smtpd_sasl_proto.c) --------------------------------

AUTH_NOT_ENABLED = Reply(503, "5.5.1", "Error: authentication not enabled")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Error: already authenticated")
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")
SASL_RESPONSE_TOO_LONG = Reply(500, "5.5.6", "SASL response limit exceeded")
INVALID_MECHANISM = auth_failed("Invalid authentication mechanism")
# A response that is no base64 fails the exchange like a wrong password
# (Postfix 3.7.11: xsasl_dovecot_server.c's reasons, smtpd_sasl_glue.c's
# 535 and its "authentication failed" warning).
BAD_BASE64_INITIAL_REASON = "Invalid base64 data in initial response"
BAD_BASE64_CONTINUED_REASON = "Invalid base64 data in continued response"
BAD_BASE64_INITIAL = auth_failed(BAD_BASE64_INITIAL_REASON)
BAD_BASE64_CONTINUED = auth_failed(BAD_BASE64_CONTINUED_REASON)

# --- cleanup / queue side (sent by the policy, listed here so there is one place) --

QUEUE_WRITE_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
# smtpd.c starttls_cmd(), smtpd_sasl_proto.c: a milter's 4xx for STARTTLS or AUTH.
MILTER_TRY_AGAIN_454 = Reply(454, "4.3.0", "Try again later")
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage")

_FOOTER_MACRO = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def with_footer(reply: Reply, footer: str, lookup: Callable[[str], str | None]) -> Reply:
    """reply with smtpd_reject_footer's text after it, as Postfix's
    smtp_reply_footer() adds it: "\\n" (backslash, n, as written in main.cf)
    starts another line with the reply's codes, a leading "\\c" continues the
    last line instead; $name and ${name} take lookup(name) (None: empty)."""
    text = _FOOTER_MACRO.sub(lambda m: lookup(m.group(1) or m.group(2)) or "", footer)
    lines = list(reply.lines)
    if text.startswith("\\c"):
        first, more, text = text[2:].partition("\\n")
        lines[-1] += first
        if not more:
            return Reply(reply.code, reply.enhanced, tuple(lines))
    lines += text.split("\\n")
    return Reply(reply.code, reply.enhanced, tuple(line.replace("\r", "").replace("\n", " ")
                                                   for line in lines))
