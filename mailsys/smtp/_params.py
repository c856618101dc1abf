"""_params - MAIL FROM and RCPT TO parameters (RFC 1870, 6152, 3461, 4954, 6531, 3030).

Each function takes the parameter words after the path and returns what the
core understood, or raises ParamError with Postfix's reply. A parameter is
only known when its extension is enabled in Settings (as Postfix answers
``555 5.5.4 Unsupported option: NOTIFY=NEVER`` when DSN is off).
"""

from __future__ import annotations

import re

from mailsys.maillog.postfix import printable

from . import _grammar as g
from . import replies as R
from .replies import Reply
from .settings import Settings


class ParamError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def _each(words: list[str], params: list[tuple[str, str | None]]):
    """(word, KEY, value) per parameter word, recording (KEY, value) in params.

    smtpd.c knows a parameter by its "NAME=" prefix and leaves the value to
    that parameter's own check: "SIZE=" and "SIZE=1=2" get 501 Bad message
    size syntax, "ENVID=a=b" and ENVID="x y" (one word) are taken (seen
    live with Postfix 3.7.11); a name it does not know is "Unsupported
    option", whatever follows it."""
    for token in words:
        key, eq, rest = token.partition("=")
        value: str | None = rest if eq else None
        if not g.ESMTP_KEYWORD_RE.match(key):
            raise ParamError(R.unsupported_option(token))
        key = key.upper()
        params.append((key, value))
        yield token, key, value


def mail_params(words: list[str], s: Settings, *, auth_active: bool
                ) -> tuple[tuple[tuple[str, str | None], ...], dict[str, object]]:
    """(params as sent, typed fields for events.MailFrom), in smtpd.c mail_cmd() terms.

    Like Postfix, SIZE= and BODY= are taken whatever EHLO advertised, a word
    that is not ``NAME=value`` for a valued parameter is an unsupported
    option, and a second RET= or ENVID= is bad syntax. AUTH= is always
    known (Postfix is built with SASL) and only recorded while SASL is
    usable here (``auth_active``): Postfix 3.7's smtpd_sasl_mail_opt() does
    not look at whether AUTH is enabled, so without SASL the parameter is
    accepted and has no effect (live, Postfix 3.7.11: "MAIL FROM:<a@b.c>
    AUTH=foo@bar" 250 with smtpd_sasl_auth_enable = no)."""
    fields: dict[str, object] = {}
    params: list[tuple[str, str | None]] = []
    auth_sender = False
    for token, key, value in _each(words, params):
        if key == "SMTPUTF8" and value is None and s.smtputf8:
            fields["smtputf8"] = True
        elif key == "XVERP" and s.verp:
            delimiters = s.verp_delimiters if value is None else value
            if len(delimiters) != 2 or any(c not in s.verp_filter for c in delimiters):
                raise ParamError(R.xverp_delimiters(s.verp_filter))
            fields["verp"] = delimiters
        elif value is None:
            raise ParamError(R.unsupported_option(token))
        elif key == "BODY" and value.upper() in _BODY_TYPES:
            fields["body"] = value.upper()
        elif key == "SIZE":
            if not value.isdigit():
                raise ParamError(R.BAD_SIZE)
            if int(value) > _OFF_T_MAX:
                raise ParamError(R.SIZE_OVERFLOW)
            fields["size"] = int(value)
        elif key == "AUTH":
            if auth_sender:
                raise ParamError(R.MULTIPLE_AUTH_PARAM)
            # smtpd_sasl_mail_opt(): the value as sent, made printable and
            # not xtext-decoded ("sasl_sender=<s+2Bq@y.example>" in Postfix
            # 3.7's log); AUTH=<> records nothing, so "AUTH=<> AUTH=x" passes.
            if value != "<>":
                auth_sender = True
                if auth_active:
                    fields["auth"] = printable(value, s.smtputf8)
        elif key in ("RET", "ENVID"):
            if not s.dsn:
                raise ParamError(R.DSN_DISABLED)
            if key == "RET":
                if "ret" in fields or not g.RET_RE.match(value):
                    raise ParamError(R.BAD_RET)
                fields["ret"] = value.upper()
            else:
                # RFC 3461 4.4: xtext. smtpd.c mail_cmd(): xtext_unquote()
                # (only a "+" must be well formed), then printable ASCII and
                # not empty (allprint()); RFC 3461's limit of 100 characters
                # is not enforced (Postfix 3.7.11 takes 200).
                envid = g.xtext_unquote(value)
                if "envid" in fields or not envid or not (envid.isascii() and envid.isprintable()):
                    raise ParamError(R.BAD_ENVID)
                fields["envid"] = envid
        else:
            raise ParamError(R.unsupported_option(token))
    return tuple(params), fields


# BODY= values (RFC 1652). Postfix offers CHUNKING without BINARYMIME
# (BDAT_README): smtpd.c mail_cmd() knows BODY=7BIT and BODY=8BITMIME only,
# and answers anything else "555 5.5.4 Unsupported option".
_BODY_TYPES = ("7BIT", "8BITMIME")
# off_cvt_string() overflow: "552 5.3.4 Message size exceeds file system imposed limit".
_OFF_T_MAX = 2**63 - 1


def rcpt_params(words: list[str], s: Settings) -> tuple[
        tuple[tuple[str, str | None], ...], tuple[str, ...] | None, tuple[str, str] | None]:
    """(params as sent, NOTIFY keywords or None, ORCPT (type, address) or None).

    smtpd.c rcpt_cmd(): only NOTIFY= and ORCPT=, each at most once."""
    notify: tuple[str, ...] | None = None
    orcpt: tuple[str, str] | None = None
    params: list[tuple[str, str | None]] = []
    for token, key, value in _each(words, params):
        if value is None or key not in ("NOTIFY", "ORCPT"):
            raise ParamError(R.unsupported_option(token))
        if not s.dsn:
            raise ParamError(R.DSN_DISABLED)
        if key == "NOTIFY":
            # dsn_notify_mask(): words separated by commas or blanks, empty
            # ones skipped; NEVER alone (Postfix 3.7.11 took
            # "NOTIFY=success,,delay", refused "NOTIFY=SUCCESS,NEVER").
            keywords = tuple(w.upper() for w in _NOTIFY_SPLIT.split(value) if w)
            if notify is not None or not keywords or not g.NOTIFY_RE.match(",".join(keywords)):
                raise ParamError(R.BAD_NOTIFY)
            notify = keywords
        else:
            # smtpd.c rcpt_cmd(): a type before the ";", then an address
            # that xtext_unquote() takes, empty or not printable as it may
            # be (Postfix 3.7.11 took "rfc822;a=b@x" and "rfc822;"; the
            # bounce server neuters what it prints).
            kind, semi, addr = value.partition(";")
            if orcpt is not None or not semi or not kind:
                raise ParamError(R.BAD_ORCPT)
            if kind.lower() == "utf-8":
                orcpt = (kind, addr)        # RFC 6533 utf-8-addr-xtext: kept as sent
            else:
                decoded = g.xtext_unquote(addr)
                if decoded is None:
                    raise ParamError(R.BAD_ORCPT)
                orcpt = (kind, decoded)
    return tuple(params), notify, orcpt


# name_mask_opt()'s separators (CHARS_COMMA_SP).
_NOTIFY_SPLIT = re.compile(r"[, \t\r\n]+")
