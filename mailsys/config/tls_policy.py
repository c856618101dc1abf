"""tls_policy - smtp_tls_policy_maps entries: which TLS policy a next hop gets.

SYNOPSIS
    site = find_policy(tables, "example.com", "smtp_tls_policy_maps")
    site.level, site.match, site.protocols      # SitePolicy, or None: no entry

DESCRIPTION
    Postfix's per-destination TLS policy (TLS_README "Per-site TLS
    policies", postconf(5) smtp_tls_policy_maps, src/smtp/smtp_tls_policy.c).

    Lookup keys: the next hop exactly as the transport or relayhost names
    it, square brackets and port included ("[mx.example.com]:587"); the
    LMTP "inet:" / "unix:" prefix is left out. A plain domain name (no
    brackets, no port) that is not found is tried again as its parent
    domains with a leading dot, nearest first: "mail.example.com", then
    ".example.com", then ".com", as transport(5) does.

    Entries: a security level (none, may, encrypt, dane, dane-only,
    fingerprint, verify, secure), then name=value attributes separated by
    blanks or commas: ciphers= (a grade), protocols=, exclude= (cipher
    exclusions), match= (verify and secure: names to match, colon-separated,
    with hostname, nexthop and dot-nexthop standing for the MX host, the
    next-hop domain and any name below it; fingerprint: "|"-separated
    certificate or public-key digests), servername= (the TLS SNI name:
    hostname, nexthop or a DNS name), and the accepted but unused
    connection_reuse=. tafile= is refused (not supported:
    an entry that names trust anchors is never used with others). Attributes after level none are
    ignored with Postfix's warning.

    A bad entry raises BadPolicy with Postfix's warning text (e.g.
    'smtp_tls_policy_maps, next-hop destination "example.com": invalid
    security level "foo"'); the caller logs it and defers the mail with
    4.7.5 "client TLS configuration problem", never sending it with less
    security than asked for.

    Pure: tables are anything with lookup(key).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol

from mailsys.frozen import frozen
from mailsys.policy.hostnames import valid_hostname

__all__ = ["BadPolicy", "SitePolicy", "LEVELS", "find_policy", "lookup_keys", "parse_policy",
           "valid_servername"]

LEVELS = ("none", "may", "encrypt", "dane", "dane-only", "fingerprint", "verify", "secure")
_MATCH_LEVELS = ("fingerprint", "verify", "secure")
# Attributes Postfix accepts that change nothing here: mailsys does not hand
# TLS connections between processes (connection_reuse).
_IGNORED = ("connection_reuse",)
# valid_hostname(): letters, digits, hyphens and dots, no brackets or port.
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_SEPARATORS = re.compile(r"[\t\n\r ,]+")


class _Table(Protocol):
    def lookup(self, key: str) -> str | None: ...


class BadPolicy(Exception):
    """An unusable entry; str() is Postfix's warning text."""


@frozen
class SitePolicy:
    level: str
    ciphers: str | None = None
    protocols: str | None = None
    exclude: str | None = None
    match: tuple[str, ...] = ()          # verify/secure names, or fingerprint digests
    warnings: tuple[str, ...] = ()       # ignored attributes (level none)
    servername: str | None = None        # TLS SNI: hostname, nexthop or a name; None: main.cf's


def lookup_keys(nexthop: str) -> list[str]:
    """The keys tried for a next hop, in order."""
    for prefix in ("inet:", "unix:"):
        if nexthop.startswith(prefix):
            nexthop = nexthop[len(prefix):]
            break
    if not _HOSTNAME_RE.fullmatch(nexthop):
        return [nexthop]
    keys = [nexthop]
    rest = nexthop
    while (dot := rest.find(".", 1)) > 0:
        rest = rest[dot:]
        keys.append(rest)
    return keys


def find_policy(tables: Iterable[_Table], nexthop: str, title: str) -> SitePolicy | None:
    """The policy for nexthop, None when no table has one; BadPolicy for a bad entry."""
    tables = tuple(tables)
    for key in lookup_keys(nexthop):
        for table in tables:
            value = table.lookup(key)
            if value is not None:
                return parse_policy(value, f'{title}, next-hop destination "{key}"', nexthop)
    return None


def parse_policy(value: str, where: str, nexthop: str = "") -> SitePolicy:
    """One table value; ``where`` starts each warning (Postfix's WHERE)."""
    words = [w for w in _SEPARATORS.split(value) if w]
    if not words:
        raise BadPolicy(f"{where}: invalid empty policy")
    level = words[0].lower()
    if level not in LEVELS:
        raise BadPolicy(f'{where}: invalid security level "{words[0]}"')
    if level == "none":
        return SitePolicy(level, warnings=tuple(
            f'{where}: ignoring attribute "{w}" with TLS disabled' for w in words[1:]))
    single: dict[str, str] = {}
    match: list[str] = []
    for word in words[1:]:
        name, eq, val = word.partition("=")
        name, val = name.strip(), val.strip()
        if not eq:
            raise BadPolicy(f'{where}: malformed attribute/value pair "{word}": '
                            "missing '=' after attribute name")
        if not name:
            raise BadPolicy(f'{where}: malformed attribute/value pair "{word}": '
                            "missing attribute name")
        key = name.lower()
        if key == "match":
            if not val:
                raise BadPolicy(f'{where}: attribute "{name}" has empty value')
            if level not in _MATCH_LEVELS:
                raise BadPolicy(f'{where}: attribute "{name}" invalid at security level "{level}"')
            match += [m for m in val.split("|" if level == "fingerprint" else ":") if m]
            continue
        if key == "servername" and not valid_servername(val):
            raise BadPolicy(f'{where}: "{name}={val}" specifies an invalid hostname')
        if key in ("ciphers", "protocols", "exclude", "servername") or key in _IGNORED:
            if key == "ciphers" and not val:
                raise BadPolicy(f'{where}: attribute "{name}" has empty value')
            if key in single:
                raise BadPolicy(f'{where}: attribute "{name}" is specified multiple times')
            single[key] = val
            continue
        if key == "tafile":
            # Postfix's trust-anchor files are not implemented; ignoring one
            # would trust more CAs than the entry allows.
            raise BadPolicy(f'{where}: attribute "{name}" is not supported')
        raise BadPolicy(f'{where}: invalid attribute name: "{name}"')
    if level == "fingerprint" and not match:
        raise BadPolicy(f"nexthop domain {nexthop}: configured at fingerprint security level, "
                        "but with no fingerprints to match.")
    return SitePolicy(level, ciphers=single.get("ciphers"), protocols=single.get("protocols"),
                      exclude=single.get("exclude"), match=tuple(match),
                      servername=single.get("servername"))


def valid_servername(value: str) -> bool:
    """An SNI setting Postfix accepts: hostname, nexthop, or a DNS name
    (A-labels); empty: no SNI."""
    return not value or value.lower() in ("hostname", "nexthop") or valid_hostname(value)
