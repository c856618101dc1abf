"""received - the Received: headers mailsys writes, in Postfix's exact layout.

smtpd's header (Postfix smtpd.c, data_cmd; postfix-compat.md section 5)::

    Received: from <helo> (<name> [<addr>])
    \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
    \t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
    \t(No client certificate requested)
    \t(Authenticated sender: <sasl user>)
    \tby <myhostname> (mailsys) with ESMTPSA id <QID>
    \tfor <rcpt>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)

The TLS lines appear only with ``smtpd_tls_received_header = yes`` on a TLS
session, the ``Authenticated sender`` line only with
``smtpd_sasl_authenticated_header = yes`` and a SASL login; the caller decides
both by passing ``tls`` / ``sasl_username`` or not. ``for <rcpt>`` appears
only when the message has exactly one recipient (listing more would reveal
Bcc recipients); with several the last lines read::

    \tby <myhostname> (mailsys) with ESMTP id <QID>;
    \tFri, 27 Nov 2026 00:22:14 +0000 (UTC)

``<helo>`` is the HELO/EHLO name, or the client name when none was given; an
IPv6 client address is written ``[IPv6:2001:db8::1]`` (RFC 5321 address
literal) as Postfix does. Where Postfix writes ``(Postfix)`` (its
``mail_name``) mailsys writes ``(mailsys)``; every other byte is Postfix's.

With no queue ID (smtpd with a before-queue filter, smtpd_proxy_filter) the
``by`` line ends after the protocol: ``\tby <myhostname> (mailsys) with ESMTP``.

Local submission (pickup) and mail mailsys makes itself (bounces) get::

    Received: by <myhostname> (mailsys, from userid 1000)
    \tid <QID>; Fri, 27 Nov 2026 00:28:35 +0000 (UTC)
    Received: by <myhostname> (mailsys)
    \tid <QID>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)

Every function returns the header as one str whose folded lines are joined
with "\\n" (the form Postfix's record stream and postfix-compat.md show);
``headers.encode_header`` turns it into CRLF wire bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from mailsys.frozen import frozen

from .address import comment_text, quote_822_local
from .dates import mail_date

__all__ = ["TlsInfo", "protocol_name", "received_smtp", "received_local", "MAIL_NAME"]

# Postfix's mail_name ("Postfix") is what appears in "by host (Postfix)".
MAIL_NAME = "mailsys"


@frozen
class TlsInfo:
    """What the Received: header says about a TLS session (tls_received_header).

    ``details`` is the key-exchange/signature text Postfix 3.4+ logs after the
    cipher, e.g. ``key-exchange X25519 server-signature RSA-PSS (2048 bits)
    server-digest SHA256``; "" leaves that line out.
    """

    protocol: str            # "TLSv1.3"
    cipher: str              # "TLS_AES_256_GCM_SHA384"
    usebits: int = 0
    algbits: int = 0
    details: str = ""
    peer_cn: str = ""        # client certificate subject CN, "" when none
    issuer_cn: str = ""
    peer_verified: bool = False
    ask_ccert: bool = False  # smtpd_tls_ask_ccert: a certificate was asked for
    # The peer certificate's fingerprint and its public key's (Postfix's
    # "AB:CD:..." form), "" when there is none or they were not asked for.
    cert_fingerprint: str = ""
    pkey_fingerprint: str = ""


def protocol_name(*, esmtp: bool = True, tls: bool = False, auth: bool = False,
                  smtputf8: bool = False) -> str:
    """protocol_name - the ``with`` keyword (RFC 3848, RFC 6531): SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP[S][A]."""
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if auth else "")


def tls_lines(tls: TlsInfo) -> list[str]:
    first = f"\t(using {tls.protocol} with cipher {tls.cipher} ({tls.usebits}/{tls.algbits} bits)"
    if tls.details:
        lines = [first, f"\t {tls.details})"]
    else:
        lines = [first + ")"]
    if tls.peer_cn:
        peer = comment_text(tls.peer_cn)
        issuer = comment_text(tls.issuer_cn)
        state = "verified OK" if tls.peer_verified else "not verified"
        lines.append(f'\t(Client CN "{peer}", Issuer "{issuer}" ({state}))')
    elif tls.ask_ccert:
        lines.append("\t(Client did not present a certificate)")
    else:
        lines.append("\t(No client certificate requested)")
    return lines


def _rfc_addr(addr: str) -> str:
    if ":" in addr and not addr[:5].lower() == "ipv6:":
        return "IPv6:" + addr
    return addr


def received_smtp(*, helo: str, client_name: str, client_addr: str, myhostname: str,
                  protocol: str, queue_id: str, recipients: Sequence[str], arrival: float,
                  tls: TlsInfo | None = None, sasl_username: str = "",
                  mail_name: str = MAIL_NAME, tz: tzinfo | None = None) -> str:
    """received_smtp - the Received: header smtpd prepends to a message it accepts."""
    lines = [f"Received: from {helo or client_name} ({client_name} [{_rfc_addr(client_addr)}])"]
    if tls is not None:
        lines.extend(tls_lines(tls))
    if sasl_username:
        lines.append(f"\t(Authenticated sender: {comment_text(sasl_username)})")
    date = mail_date(arrival, tz)
    # No queue ID: the message goes to a before-queue filter (smtpd_proxy_filter).
    by = f"\tby {myhostname} ({mail_name}) with {protocol}" + (f" id {queue_id}" if queue_id else "")
    if len(recipients) == 1:
        lines.append(by)
        lines.append(f"\tfor <{quote_822_local(recipients[0])}>; {date}")
    else:
        lines.append(by + ";")
        lines.append(f"\t{date}")
    return "\n".join(lines)


def received_local(*, myhostname: str, queue_id: str, arrival: float, uid: int | None = None,
                   mail_name: str = MAIL_NAME, tz: tzinfo | None = None) -> str:
    """received_local - ``Received: by host (mailsys[, from userid N])`` for local or internal mail."""
    who = f"{mail_name}, from userid {uid}" if uid is not None else mail_name
    return f"Received: by {myhostname} ({who})\n\tid {queue_id}; {mail_date(arrival, tz)}"
