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
                     smtp_tls_CAfile (else the system store) and carry the
                     names of smtp_tls_verify_cert_match (default hostname:
                     the MX host's name) or smtp_tls_secure_cert_match
                     (default nexthop, dot-nexthop: the next-hop domain or
                     a name below it, so an MX record from an unsigned DNS
                     answer cannot name the host the certificate is checked
                     against); the strategies and matching rules are
                     mailsys.tls_match's. A mismatch logs Postfix's
                     "server certificate verification failed for
                     mx.example.com[192.0.2.1]:25: num=62:hostname mismatch"
                     (num=64:IP address mismatch for an address) and
                     defers with 4.7.5 "Server certificate not verified"
      dane           no DNSSEC here: may, as Postfix does for insecure TLSA

    Per destination (tls_policies(), smtp_tls_policy_maps; the entry
    syntax and lookup keys are mailsys.config.tls_policy's): a next hop
    with an entry gets that level instead of smtp_tls_security_level, and
    its ciphers= (grade), protocols=, exclude= and match= (colon-separated
    strategies, for verify and secure) in place of the main.cf settings.
    Contexts are built once per distinct (level, ciphers, protocols,
    exclude). Level fingerprint is encrypt plus a check, after
    the handshake, of the certificate's or its public key's
    $smtp_tls_fingerprint_digest digest against match= (or, for the
    main.cf level, $smtp_tls_fingerprint_cert_match); no match is 4.7.5
    "Server certificate not verified". dane-only cannot be had without
    DNSSEC: Postfix's warning "<next hop>: dane-only configured with
    dnssec lookups disabled", and the mail waits. A bad entry logs
    Postfix's warning and defers with 4.7.5 "client TLS configuration
    problem".

    With TLS off, smtp_tls_note_starttls_offer = yes logs Postfix's "Host
    offered STARTTLS: [mx.example.com]" for servers that offer it.
    smtp_tls_loglevel 1 or more logs Postfix's "Untrusted TLS connection
    established to mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher ...".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Callable

import structlog

from mailsys.config.tables import open_table
from mailsys.config.tls_level import client_level
from mailsys.config.tls_policy import BadPolicy, SitePolicy, find_policy, valid_servername
from mailsys.errors import ConfigError
from mailsys.routing import BadNextHop, parse_nexthop
from mailsys.runtime.smtp_client_io import SessionError, TlsPolicy
from mailsys.tls_match import match_names

if TYPE_CHECKING:
    from mailsys.tls import TlsEngine

__all__ = ["tls_policy", "tls_policies", "LEVELS", "nexthop_domain"]

log = structlog.get_logger()

LEVELS = ("none", "may", "encrypt", "verify", "secure")


def tls_policy(cfg, site: SitePolicy | None = None, program: str = "smtp") -> TlsPolicy:
    """The policy of smtp_tls_security_level, or of a policy table entry."""
    if site is None:
        for name in ("smtp_tls_verify_cert_match", "smtp_tls_secure_cert_match"):
            if not cfg[name]:
                # Postfix: the smtp program's start-up fails, whatever the level.
                own = name.replace("smtp_", f"{program}_", 1)
                raise ConfigError(f"bad string length 0 < 1: {own} = ")
    level = site.level if site is not None else client_level(cfg)
    if level == "dane":
        level = "may"
    if level == "none":
        return TlsPolicy(note_offer=cfg.smtp_tls_note_starttls_offer)
    # pyOpenSSL and cryptography (~4 MB per process) load only for a level
    # that may use TLS.
    from mailsys.runtime.tls_stream import TlsStream
    from mailsys.tls import TlsEngine, client_context, ssl_options, unknown_ssl_option
    exclude: tuple[str, ...] = ()
    match: tuple[str, ...] = ()
    if site is not None:
        overrides = {}
        if site.ciphers:
            overrides.update(smtp_tls_ciphers=site.ciphers, smtp_tls_mandatory_ciphers=site.ciphers)
        if site.protocols is not None:
            overrides.update(smtp_tls_protocols=site.protocols,
                             smtp_tls_mandatory_protocols=site.protocols)
        if overrides:
            cfg = cfg.with_overrides(overrides)
        exclude = tuple((site.exclude or "").replace(",", " ").replace(":", " ").split())
        match = site.match
    elif level == "fingerprint":
        match = tuple(w for word in cfg.smtp_tls_fingerprint_cert_match
                      for w in word.replace("|", " ").replace(",", " ").split())
    if level in ("verify", "secure") and not match:
        # main.cf's strategies, separated by commas, blanks or colons.
        words = cfg[f"smtp_tls_{level}_cert_match"]
        match = tuple(w for word in words for w in word.split(":") if w)
    servername = site.servername if site is not None and site.servername is not None \
        else str(cfg.smtp_tls_servername)
    if not valid_servername(servername):
        return TlsPolicy(level, problem=f'"{program}_tls_servername = {servername}" '
                                        "specifies an invalid hostname")
    # Fingerprint checks no chain: encrypt, then the digest (smtp_client_io).
    # Without digests to match the level stays a ConfigError of
    # client_context, never a silent encrypt.
    ctx = client_context(cfg, "encrypt" if level == "fingerprint" and match else level, exclude)
    for token in ssl_options(cfg)[1]:
        log.warning(unknown_ssl_option(cfg, token))

    def engine(host: str, nexthop: str = "") -> TlsEngine:
        names: tuple[str, ...] = ()
        domain = nexthop_domain(nexthop) or host
        if level in ("verify", "secure"):
            names = match_names(match, host, domain)
        sni = {"hostname": host, "nexthop": domain}.get(servername.lower(), servername)
        return TlsEngine(ctx, server_side=False, server_hostname=host, match_names=names,
                         sni=sni or None)

    return TlsPolicy(level, engine=engine, wrap=TlsStream, log=cfg.smtp_tls_loglevel >= 1,
                     fingerprints=match if level == "fingerprint" else (),
                     digest=str(cfg.smtp_tls_fingerprint_digest))


def tls_policies(cfg, program: str = "smtp", default: TlsPolicy | None = None
                 ) -> Callable[[str], TlsPolicy] | None:
    """next hop -> TlsPolicy per smtp_tls_policy_maps (None when it is empty).

    default: the policy of next hops without an entry (tls_policy(cfg),
    built here when not given). The returned function raises SessionError
    (4.7.5, not connected) for a next hop whose entry is unusable, after
    logging Postfix's warning."""
    specs = tuple(cfg.smtp_tls_policy_maps)
    if not specs:
        return None
    tables = tuple(open_table(spec, cfg) for spec in specs)
    title = "lmtp_tls_policy_maps" if program == "lmtp" else "smtp_tls_policy_maps"
    if default is None:
        default = tls_policy(cfg, program=program)
    built: dict[SitePolicy, TlsPolicy] = {}

    def lookup(nexthop: str) -> TlsPolicy:
        try:
            site = find_policy(tables, nexthop, title)
        except BadPolicy as e:
            log.warning(str(e))
            raise SessionError("4.7.5", "client TLS configuration problem") from None
        if site is None:
            return default
        for text in site.warnings:
            log.warning(text)
        if site.level == "dane-only":
            # No DNSSEC here: Postfix dane_incompat(NONDANE_CONFIG).
            log.warning(f"{nexthop}: dane-only configured with dnssec lookups disabled")
            raise SessionError("4.7.5", "client TLS configuration problem")
        policy = built.get(site)
        if policy is None:
            policy = built[site] = tls_policy(cfg, site, program)
        return policy

    return lookup


def nexthop_domain(nexthop: str) -> str:
    """The domain or host of a next hop ("example.com:2526" -> "example.com")."""
    try:
        return parse_nexthop(nexthop).host if nexthop else ""
    except BadNextHop:
        return ""

