"""smtp_tls - the smtp client's TLS policy from main.cf (smtp_tls_security_level).

SYNOPSIS
    policy = tls_policy(cfg)      # TlsPolicy(level, engine=..., wrap=..., log=...)

DESCRIPTION
    Builds the pyOpenSSL client context once, at start-up (mailsys.tls
    client_context: a bad CA file is a ConfigError naming the parameter),
    and hands mailsys.runtime.smtp_client_io the two things it needs: a
    TlsEngine per connection, for the MX host's name (SNI, and the name
    checked at verify and secure), and the TlsStream that carries the
    session after STARTTLS.

    Levels (Postfix smtp_tls_security_level):

      none / empty   no STARTTLS
      may            STARTTLS when offered; a failed handshake is retried
                     once in plaintext on a new connection
      encrypt        STARTTLS required, certificate not checked; a server
                     without it is a 4.7.4 deferral, a failed handshake 4.7.5
      verify/secure  as encrypt, and the certificate must verify against
                     smtp_tls_CAfile (else the system store); verify
                     matches it to the MX host name (Postfix
                     smtp_tls_verify_cert_match = hostname), secure to the
                     next-hop domain or a name below it (Postfix
                     smtp_tls_secure_cert_match = nexthop, dot-nexthop), so
                     an MX record from an unsigned DNS answer cannot name
                     the host the certificate is checked against
      dane           no DNSSEC here: may, as Postfix does for insecure TLSA

    With TLS off, smtp_tls_note_starttls_offer = yes logs Postfix's "Host
    offered STARTTLS: [mx.example.com]" for servers that offer it.
    smtp_tls_loglevel 1 or more logs Postfix's "Untrusted TLS connection
    established to mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher ...".
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailsys.routing import BadNextHop, parse_nexthop
from mailsys.runtime.smtp_client_io import TlsPolicy

if TYPE_CHECKING:
    from mailsys.tls import TlsEngine

__all__ = ["tls_policy", "LEVELS", "nexthop_domain"]

LEVELS = ("none", "may", "encrypt", "verify", "secure")


def tls_policy(cfg) -> TlsPolicy:
    level = (cfg.smtp_tls_security_level or "none").lower()
    if level == "dane":
        level = "may"
    if level == "none":
        return TlsPolicy(note_offer=cfg.smtp_tls_note_starttls_offer)
    # pyOpenSSL and cryptography (~4 MB per process) load only for a level
    # that may use TLS.
    from mailsys.runtime.tls_stream import TlsStream
    from mailsys.tls import TlsEngine, client_context
    ctx = client_context(cfg, level)      # ConfigError for an unknown level or a bad file

    def engine(host: str, nexthop: str = "") -> TlsEngine:
        names: tuple[str, ...] = ()
        domain = nexthop_domain(nexthop) or host
        if level == "secure" and not _is_address(domain):
            names = (domain, "." + domain)
        return TlsEngine(ctx, server_side=False, server_hostname=host, match_names=names)

    return TlsPolicy(level, engine=engine, wrap=TlsStream, log=cfg.smtp_tls_loglevel >= 1)


def nexthop_domain(nexthop: str) -> str:
    """The domain or host of a next hop ("example.com:2526" -> "example.com")."""
    try:
        return parse_nexthop(nexthop).host if nexthop else ""
    except BadNextHop:
        return ""


def _is_address(name: str) -> bool:
    """An address literal: secure then matches the certificate to it as verify does."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
