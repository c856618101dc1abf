"""settings - what the ESMTP protocol core needs to know, and nothing else.

Settings is built once per service from Config by the I/O shell
(services/smtpd); the core never reads main.cf. Every default is Postfix
3.7's (postconf -d), except smtpd_forbid_bare_newline which takes 3.9's
``normalize`` (SMTP smuggling protection on by default).

Policy (relay control, restrictions, anvil, SASL password checks, queue IDs)
is not here: the core hands those decisions to the caller as events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from mailsys.frozen import frozen

from .errors import LocalProtocolError

BareNewline = Literal["normalize", "reject", "no"]


@frozen
class Settings:
    # $myhostname: in the EHLO/HELO reply and in 421/500/550 texts.
    hostname: str = "localhost"
    # message_size_limit (Postfix default 10240000 bytes; 0 = no limit):
    # advertised as SIZE, checked against MAIL SIZE= and the real body size.
    message_size_limit: int = 10240000
    # line_length_limit (Postfix default 2048): Postfix reads an SMTP command
    # with smtp_get(buffer, stream, var_line_limit, SMTP_GET_FLAG_SKIP)
    # (smtpd_chat.c), so a command line longer than this, not counting CRLF,
    # is cut there, the rest skipped, and runs (Postfix 3.7.11 live: "NOOP"
    # and 5,000 x's got "250 2.0.0 Ok", with the warning "request longer
    # than 2048"). This is
    # deliberately more lenient than RFC 5321 4.5.3.1.4 (512 octets with CRLF),
    # as Postfix is: long AUTH= and ORCPT= parameters need it. Body lines are never cut
    # here: Postfix only folds long body lines into several queue records.
    line_length_limit: int = 2048
    # smtpd_sasl_response_limit (Postfix default 12288): longest SASL response line.
    sasl_response_limit: int = 12288
    # smtpd_recipient_limit / smtpd_recipient_overshoot_limit (1000 / 1000; 0 = off).
    recipient_limit: int = 1000
    recipient_overshoot_limit: int = 1000
    # Commands ("rcpt", "etrn") whose refusals past their first checks the
    # policy may overrule with its own, checked before them
    # (RemoteProtocolError.policy_first): RCPT when smtpd_client_recipient_
    # rate_limit is on (smtpd.c rcpt_cmd() asks anvil once "TO:" parses),
    # ETRN when smtpd_milters are (etrn_cmd(): their standing refusal).
    policy_first: frozenset[str] = frozenset()
    # smtpd_hard_error_limit (20), smtpd_soft_error_limit (10), smtpd_junk_command_limit (100).
    # 0 turns the hard and soft limits off here (Postfix has no "off" value).
    hard_error_limit: int = 20
    soft_error_limit: int = 10
    junk_command_limit: int = 100
    # smtpd_helo_required (no): MAIL before HELO/EHLO gets 503 5.5.1.
    helo_required: bool = False
    # smtpd_forbid_bare_newline: Postfix 3.9 values; "normalize" is 3.9's default.
    # Only <CR><LF>.<CR><LF> ends DATA in every mode; "reject" also refuses a
    # command line ended by a bare LF (see _body.py for the content rules).
    forbid_bare_newline: BareNewline = "normalize"
    # smtpd_forbid_bare_newline_reject_code (550; 521 also hangs up).
    bare_newline_reject_code: int = 550
    # smtpd_forbid_cmds (CONNECT GET POST): answered with 221 2.7.0 and a hangup.
    forbid_commands: tuple[str, ...] = ("CONNECT", "GET", "POST")
    # ... or, when given, whether the command word as sent is one (the whole
    # string list: words, !words and tables, as smtpd_forbidden_commands'
    # default regexp:{{/^[^A-Z]/ Bogus}}); forbid_commands is then unused.
    forbid_match: Callable[[str], bool] | None = None
    # smtpd_noop_commands: verbs answered "250 Ok" before anything else
    # looks at them, not in the disconnect statistics.
    noop_commands: tuple[str, ...] = ()
    # smtpd_command_filter: each command line (leading blanks off) -> the
    # line to run instead, or None; the connection records what it replaced.
    command_filter: Callable[[str], str | None] | None = None
    # ESMTP extensions to advertise (Postfix's smtpd_discard_ehlo_keywords in
    # reverse). Like smtpd.c, SIZE= and BODY= are accepted even when not
    # advertised; DSN off makes RET/ENVID/NOTIFY/ORCPT "501 5.7.1 DSN support
    # is disabled"; CHUNKING off refuses BDAT; STARTTLS and AUTH follow below.
    pipelining: bool = True
    size: bool = True
    vrfy: bool = True                 # not disable_vrfy_command
    etrn: bool = False
    # VRFY, ETRN and XVERP in the EHLO reply. Discarding the keyword leaves
    # the command or parameter working: smtpd.c vrfy_cmd() looks at
    # disable_vrfy_command only, etrn_cmd() at nothing, mail_cmd() at
    # smtpd_authorized_verp_clients.
    vrfy_keyword: bool = True
    etrn_keyword: bool = True
    verp_keyword: bool = True
    starttls: bool = False            # a certificate is configured and TLS may be used
    tls_required: bool = False        # smtpd_tls_security_level = encrypt
    auth_mechanisms: tuple[str, ...] = ()   # smtpd_sasl_auth_enable: e.g. ("PLAIN", "LOGIN")
    # Under TLS, when they differ (smtpd_sasl_tls_security_options); None: the same.
    tls_auth_mechanisms: tuple[str, ...] | None = None
    tls_auth_only: bool = False       # smtpd_tls_auth_only
    # smtpd_sasl_exceptions_networks: AUTH is not in the EHLO reply for this
    # client (for clients that try AUTH whenever offered); the command works.
    advertise_auth: bool = True
    broken_sasl_auth_clients: bool = False
    enhancedstatuscodes: bool = True
    eightbitmime: bool = True
    dsn: bool = True
    smtputf8: bool = True             # smtputf8_enable (yes at compatibility_level >= 1)
    # strict_smtputf8 (no): "Historically, Postfix does not forbid 8-bit envelope
    # localparts" (smtpd.c); only when strict, a non-ASCII address without
    # SMTPUTF8 gets 553 5.6.7.
    strict_smtputf8: bool = False
    # strict_rfc821_envelopes (no): a MAIL or RCPT address must be in <> with
    # nothing beside it (no comment, no phrase, no stray bracket).
    strict_rfc821_envelopes: bool = False
    # allow_min_user (no): a MAIL or RCPT address that begins with "-" is bad
    # syntax (Postfix's trivial-rewrite flags it; smtpd answers 501).
    allow_min_user: bool = False
    # resolve_null_domain (no): <user@> is bad syntax; yes takes it as user@$myhostname.
    resolve_null_domain: bool = False
    # resolve_numeric_domain (no): a domain of digits and dots is bad syntax;
    # yes takes an IPv4 address there as the address literal [a.b.c.d].
    resolve_numeric_domain: bool = False
    chunking: bool = True
    # smtpd_authorized_verp_clients: XVERP is offered to (and taken from)
    # this client; XVERP alone means verp_delimiters, XVERP=xy two of
    # verp_filter's characters (default_verp_delimiters, verp_delimiter_filter).
    verp: bool = False
    verp_delimiters: str = "+="
    verp_filter: str = "-=+"

    def __post_init__(self) -> None:
        if self.forbid_bare_newline not in ("normalize", "reject", "no"):
            raise LocalProtocolError(
                f"forbid_bare_newline must be normalize, reject or no, not {self.forbid_bare_newline!r}")
        if self.line_length_limit < 64:
            raise LocalProtocolError("line_length_limit below 64 cannot hold an SMTP command")
        object.__setattr__(self, "auth_mechanisms",
                           tuple(m.upper() for m in self.auth_mechanisms))
        if self.tls_auth_mechanisms is not None:
            object.__setattr__(self, "tls_auth_mechanisms",
                               tuple(m.upper() for m in self.tls_auth_mechanisms))
        object.__setattr__(self, "forbid_commands",
                           tuple(c.upper() for c in self.forbid_commands))
        object.__setattr__(self, "noop_commands", tuple(c.upper() for c in self.noop_commands))

    def auth_offered(self, *, tls_active: bool) -> tuple[str, ...]:
        """The SASL mechanisms usable right now (none before TLS with tls_auth_only)."""
        if self.tls_auth_only and not tls_active:
            return ()
        if tls_active and self.tls_auth_mechanisms is not None:
            return self.tls_auth_mechanisms
        return self.auth_mechanisms
