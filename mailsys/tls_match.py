"""tls_match - the names a server certificate must carry at the verify and secure levels.

SYNOPSIS
    from mailsys.tls_match import NameCheck, match_names, host_matches

    names = match_names(("nexthop", "dot-nexthop"), host="mx.example.com", nexthop="example.com")
    check = NameCheck.of(names)     # hosts ("example.com", ".example.com"), no address
    check.failures(cert)            # [] or ["hostname"], ["ip"], ["hostname", "ip"]
    host_matches("*.example.com", "mx.example.com")                 # True

DESCRIPTION
    The smtp and lmtp clients check the server certificate's names with
    the strategies of smtp_tls_verify_cert_match (default hostname),
    smtp_tls_secure_cert_match (default nexthop, dot-nexthop; for lmtp
    nexthop) or a policy table entry's match= attribute (postconf(5)):

      hostname      the name of the MX host (or of the host the next hop names)
      nexthop       the next-hop domain, or host with [brackets]
      dot-nexthop   any name below the next-hop domain
      example.com   that name
      .example.com  any name below example.com

    Postfix 3.7 hands each resulting name to OpenSSL (SSL_add1_host), so
    the rules are OpenSSL's X509_check_host and X509_check_ip, as seen
    against a live Postfix 3.7.11:

    - A name is met by a subjectAltName dNSName, or, when the certificate
      has none, by a subject CommonName; case does not matter. Any one of
      the names will do.
    - A certificate name "*.example.com" stands for exactly one label:
      it meets "mx.example.com", not "a.mx.example.com" nor "example.com",
      whatever tls_wildcard_matches_multiple_labels says (Postfix 3.7's
      client leaves that parameter unused). The "*" counts only as the
      whole first label of a name with at least three labels ("*.com" and
      "mx*.example.com" are plain names).
    - ".example.com" is met by any certificate name that ends in it, a
      wildcard "*.example.com" included.
    - A name that is an IP address ([127.0.0.1] as next hop or MX host)
      must be a subjectAltName iPAddress, and is checked besides the
      names: both must be met. Only the first address counts; Postfix
      warns of each further one ("error loading match name") and goes on.
    - OpenSSL reports a failed name check ("num=62:hostname mismatch")
      before a failed address check ("num=64:IP address mismatch").

    Pure: certificates are cryptography x509.Certificate objects. The
    cryptography package is imported only when a certificate is looked at,
    so that an smtp client without TLS never loads it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from mailsys.frozen import frozen

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["NameCheck", "match_names", "host_matches", "names_match", "certificate_names",
           "certificate_addresses"]

# A label OpenSSL's valid_star() accepts after a wildcard: letters, digits
# and hyphens, neither starting nor ending with a hyphen.
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_WILD_LABEL_RE = re.compile(r"[a-z0-9-]+")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def match_names(strategies: Iterable[str], host: str, nexthop: str) -> tuple[str, ...]:
    """The names the strategies stand for: hostname, nexthop and
    dot-nexthop (any case) become the MX host, the next-hop domain and
    "." plus that domain; any other word is a name itself."""
    names = []
    for word in strategies:
        w = word.lower()
        if w == "hostname":
            names.append(host)
        elif w == "nexthop":
            names.append(nexthop)
        elif w == "dot-nexthop":
            names.append("." + nexthop)
        elif word:
            names.append(word)
    return tuple(names)


@frozen
class NameCheck:
    """The names (any one of them) and the address (if any) a certificate must carry."""
    hosts: tuple[str, ...] = ()
    ip: Address | None = None
    refused: tuple[str, ...] = ()        # addresses after the first: Postfix warns and drops them

    @classmethod
    def of(cls, names: Iterable[str]) -> NameCheck:
        hosts: list[str] = []
        refused: list[str] = []
        ip = None
        for name in names:
            try:
                address = ipaddress.ip_address(name)
            except ValueError:
                hosts.append(name)
                continue
            if ip is None:
                ip = address
            else:
                refused.append(name)
        return cls(tuple(hosts), ip, tuple(refused))

    def failures(self, cert: x509.Certificate | None) -> list[str]:
        """What the certificate fails, in OpenSSL's order: "hostname", "ip"."""
        failed = []
        if self.hosts and not names_match(certificate_names(cert), self.hosts):
            failed.append("hostname")
        if self.ip is not None and self.ip not in certificate_addresses(cert):
            failed.append("ip")
        return failed


def names_match(cert_names: Iterable[str], wanted: Iterable[str]) -> bool:
    """Whether any certificate name meets any wanted name (host_matches)."""
    cert_names = list(cert_names)
    return any(host_matches(c, w) for w in wanted for c in cert_names)


def host_matches(cert_name: str, wanted: str) -> bool:
    """OpenSSL X509_check_host() for one certificate name, with
    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS and single-label wildcards."""
    pattern = cert_name.lower().rstrip(".")
    subject = wanted.lower().rstrip(".")
    if not pattern or not subject:
        return False
    if len(subject) > 1 and subject.startswith("."):
        # A sub-domain pattern: any name ending in it, "*" prefix and all.
        return pattern.endswith(subject)
    suffix = _wildcard_suffix(pattern)
    if suffix is None:
        return pattern == subject
    if not subject.endswith(suffix):
        return False
    label = subject[:-len(suffix)]
    return bool(label) and (label == "*" or bool(_WILD_LABEL_RE.fullmatch(label)))


def _wildcard_suffix(pattern: str) -> str | None:
    """".example.com" for a wildcard "*.example.com" OpenSSL accepts
    (valid_star: a whole first label, two or more labels after it)."""
    if not pattern.startswith("*."):
        return None
    labels = pattern[2:].split(".")
    if len(labels) < 2 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return None
    return pattern[1:]


def certificate_names(cert: x509.Certificate | None) -> list[str]:
    """The DNS names a certificate is for: its subjectAltName dNSNames,
    else its subject CNs (as OpenSSL's X509_check_host reads them)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    if cert is None:
        return []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower().rstrip(".") for n in names]


def certificate_addresses(cert: x509.Certificate | None) -> list[Address]:
    """The subjectAltName iPAddresses (X509_check_ip reads nothing else)."""
    from cryptography import x509
    if cert is None:
        return []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [a for a in san.get_values_for_type(x509.IPAddress)
            if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))]
