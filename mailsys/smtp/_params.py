"""_params - MAIL FROM and RCPT TO parameters (RFC 1870, 6152, 3461, 4954, 6531, 3030).

Each function takes the parameter words after the path and returns what the
core understood, or raises ParamError with Postfix's reply. A parameter is
only known when its extension is enabled in Settings (as Postfix answers
``555 5.5.4 Unsupported option: NOTIFY=NEVER`` when DSN is off).
"""

from __future__ import annotations

from . import _grammar as g
from . import replies as R
from .replies import Reply
from .settings import Settings


class ParamError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def _each(words: list[str], params: list[tuple[str, str | None]]):
    """(word, KEY, value) per parameter word, recording (KEY, value) in params."""
    for token in words:
        m = g.ESMTP_PARAM_RE.match(token)
        if m is None:
            raise ParamError(R.unsupported_option(token))
        key, value = m.group("key").upper(), m.group("value")
        params.append((key, value))
        yield token, key, value


def mail_params(words: list[str], s: Settings, *, auth_active: bool
                ) -> tuple[tuple[tuple[str, str | None], ...], dict[str, object]]:
    """(params as sent, typed fields for events.MailFrom).

    ``auth_active``: SASL is usable now (AUTH= is known whenever SASL is
    configured, as smtpd.c checks var_smtpd_sasl_enable; while it is not
    usable, e.g. before TLS with smtpd_tls_auth_only, smtpd_sasl_mail_opt()
    answers "503 5.5.4 Error: authentication disabled")."""
    fields: dict[str, object] = {}
    params: list[tuple[str, str | None]] = []
    for token, key, value in _each(words, params):
        if key == "SIZE" and s.size:
            if value is None or not g.SIZE_RE.match(value):
                raise ParamError(R.BAD_SIZE)
            fields["size"] = int(value)
        elif key == "BODY" and s.eightbitmime:
            body = (value or "").upper()
            allowed = ("7BIT", "8BITMIME", "BINARYMIME") if s.chunking else ("7BIT", "8BITMIME")
            if body not in allowed:
                raise ParamError(R.bad_body(value or ""))
            fields["body"] = body
        elif key == "SMTPUTF8" and s.smtputf8 and value is None:
            fields["smtputf8"] = True
        elif key == "RET" and s.dsn:
            if value is None or not g.RET_RE.match(value):
                raise ParamError(R.BAD_RET)
            fields["ret"] = value.upper()
        elif key == "ENVID" and s.dsn:
            # RFC 3461 4.4: at most 100 characters
            if value is None or len(value) > 100 or not g.XTEXT_RE.match(value):
                raise ParamError(R.BAD_ENVID)
            fields["envid"] = g.xtext_decode(value)
        elif key == "AUTH" and s.auth_mechanisms and value is not None:
            if not auth_active:
                raise ParamError(R.AUTH_DISABLED)
            if "auth" in fields:
                raise ParamError(R.MULTIPLE_AUTH_PARAM)
            # Postfix keeps the value as sent (made printable); decode valid xtext.
            fields["auth"] = g.xtext_decode(value) if g.XTEXT_RE.match(value) else value
        else:
            raise ParamError(R.unsupported_option(token))
    return tuple(params), fields


def rcpt_params(words: list[str], s: Settings) -> tuple[
        tuple[tuple[str, str | None], ...], tuple[str, ...] | None, tuple[str, str] | None]:
    """(params as sent, NOTIFY keywords or None, ORCPT (type, address) or None)."""
    notify = orcpt = None
    params: list[tuple[str, str | None]] = []
    for token, key, value in _each(words, params):
        if key == "NOTIFY" and s.dsn:
            if value is None or not g.NOTIFY_RE.match(value):
                raise ParamError(R.BAD_NOTIFY)
            notify = tuple(value.upper().split(","))
        elif key == "ORCPT" and s.dsn:
            m = g.ORCPT_RE.match(value or "")
            if m is None or not g.XTEXT_RE.match(m.group("addr")):
                raise ParamError(R.BAD_ORCPT)
            orcpt = (m.group("type"), g.xtext_decode(m.group("addr")))
        else:
            raise ParamError(R.unsupported_option(token))
    return tuple(params), notify, orcpt
