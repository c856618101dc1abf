"""resolve - where an address goes, and whether that is ours to accept.

DESCRIPTION
    AddressResolver.resolve() follows Postfix's trivial-rewrite resolver
    with allow_untrusted_routing = no and answers a Resolved: the local
    part, the domain and its DomainClass, and whether the local part still
    holds a routing operator.

    A recipient domain is ours when it is in mydestination (or is one of our
    own address literals), virtual_alias_domains, virtual_mailbox_domains
    or relay_domains. A local domain is stripped and what remains is
    resolved again, so user%host@local, host!user@local, user@host@local and
    quoted "user@host"@local all end at host (allow_percent_hack,
    swap_bangpath and resolve_dequoted_address switch the three tricks;
    with resolve_numeric_domain user@192.0.2.1 is user@[192.0.2.1]). A
    localpart that still holds a routing operator for a non-local domain is
    marked routed, which the relay checks treat as not authorized: no
    address form reaches a remote domain without being treated as relaying.
    An address without a domain resolves at $myhostname. Rewriting stops
    after a bounded number of steps, and an address that needs more is
    treated as remote and routed.

    split_address() and dequote() are the RFC 5321 local-part syntax both
    this resolver and the restrictions use: '@' inside quotes or after a
    backslash does not split.

SEE ALSO
    Postfix src/trivial-rewrite/resolve.c, ADDRESS_CLASS_README,
    postconf(5) allow_percent_hack, swap_bangpath, resolve_dequoted_address.
"""

from __future__ import annotations

import enum
import re

from mailsys.frozen import frozen
from mailsys.policy.netmatch import DomainMatcher, parse_address
from mailsys.smtp.address import numeric_literal

_MAX_RESOLVE_STEPS = 50    # each step strips a domain or an operator; bounds hostile input


def _unquoted(addr: str, ch: str) -> list[int]:
    """Indexes of ch outside double quotes and backslash escapes."""
    found = []
    quoted = False
    escaped = False
    for i, c in enumerate(addr):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            found.append(i)
    return found


def _unquoted_rfind(addr: str, ch: str) -> int:
    """Index of the last ch outside quotes, or -1."""
    found = _unquoted(addr, ch)
    return found[-1] if found else -1


def dequote(local: str) -> str:
    """A quoted local part without its quotes and backslash escapes."""
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def split_address(addr: str) -> tuple[str, str]:
    """('local', 'domain') split at the last unquoted @; domain '' when none."""
    at = _unquoted_rfind(addr, "@")
    if at < 0:
        return addr, ""
    return addr[:at], addr[at + 1:]


class DomainClass(enum.Enum):
    """Postfix's address classes (trivial-rewrite RESOLVE_CLASS_*)."""
    LOCAL = "local"        # mydestination, our own address literals
    ALIAS = "alias"        # virtual_alias_domains
    VIRTUAL = "virtual"    # virtual_mailbox_domains
    RELAY = "relay"        # relay_domains
    DEFAULT = "default"    # anything else: the Internet

    @property
    def final(self) -> bool:
        return self in (DomainClass.LOCAL, DomainClass.ALIAS, DomainClass.VIRTUAL)


@frozen
class Resolved:
    """Where an address goes: local part, domain, class, and whether the
    local part still carries a routing operator (RESOLVE_FLAG_ROUTED)."""
    local: str
    domain: str
    cls: DomainClass
    routed: bool

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}" if self.domain else self.local


@frozen
class AddressResolver:
    """The resolver's view of main.cf: which domains are ours, and which
    address tricks (percent hack, bang paths, quoted addresses) apply."""
    mydestination: DomainMatcher
    virtual_alias_domains: DomainMatcher
    virtual_mailbox_domains: DomainMatcher
    relay_domains: DomainMatcher
    local_addrs: frozenset       # own_addresses(): our address literals are local
    myhostname: str              # lower case
    percent_hack: bool
    swap_bangpath: bool
    resolve_dequoted: bool
    numeric_domain: bool = False  # resolve_numeric_domain: user@192.0.2.1 is user@[192.0.2.1]

    def resolve(self, addr: str) -> Resolved:
        """Where addr goes, after Postfix's trivial-rewrite address tricks."""
        addr = addr.strip()
        if addr.startswith("<") and addr.endswith(">"):
            addr = addr[1:-1]
        saved_domain = ""
        for _ in range(_MAX_RESOLVE_STEPS):
            # Source route @a,@b:user@c: servers ignore the route (RFC 5321 C).
            if addr.startswith("@") and ":" in addr:
                addr = addr.split(":", 1)[1]
            local, domain = split_address(addr)
            if domain or _unquoted_rfind(addr, "@") >= 0:
                domain = domain.rstrip(".").lower()
                if not domain:
                    addr = local      # a trailing @ is dropped (resolve.c)
                    continue
                if self.numeric_domain and domain[-1].isdigit():
                    domain = numeric_literal(domain) or domain
                if not self.is_local_domain(domain):
                    return self.classify(local, domain)
                # A local domain is stripped; what is left may route further.
                saved_domain = domain
                addr = local
                continue
            bangs = _unquoted(addr, "!") if self.swap_bangpath else []
            if bangs:
                bang = bangs[0]
                addr = f"{addr[bang + 1:]}@{addr[:bang]}"
                continue
            if self.percent_hack and _unquoted_rfind(addr, "%") >= 0:
                pct = _unquoted_rfind(addr, "%")
                addr = f"{addr[:pct]}@{addr[pct + 1:]}"
                continue
            if self.resolve_dequoted and addr.startswith('"'):
                inner = dequote(addr)
                if inner != addr and any(op in inner for op in "@!%"):
                    if "@" not in inner and "%" in inner and self.percent_hack:
                        pct = inner.rfind("%")
                        inner = f"{inner[:pct]}@{inner[pct + 1:]}"
                    addr = inner
                    continue
            if not saved_domain and self.myhostname:
                # resolve.c: "Re-resolve with @$myhostname for backwards
                # compatibility": local only when $myhostname is.
                addr = f"{addr}@{self.myhostname}"
                continue
            return Resolved(addr, saved_domain or self.myhostname, DomainClass.LOCAL, False)
        # Too many rewriting steps: refuse to treat it as ours.
        return Resolved(addr, "", DomainClass.DEFAULT, True)

    def is_local_domain(self, domain: str) -> bool:
        """mydestination, or an address literal of ours."""
        if domain.startswith("["):
            ip = parse_address(domain)
            return ip is not None and (ip in self.local_addrs or self.mydestination.match(domain))
        return self.mydestination.match(domain)

    def classify(self, local: str, domain: str) -> Resolved:
        """The class of a domain that is not local, and whether local still routes."""
        if domain.startswith("[") or "" in domain.rstrip(".").split("."):
            # An address literal that is not ours, or a name with an empty
            # label ("..relay.example"): no valid hostname, so none of our
            # domains or their subdomains (resolve.c flags it as an error).
            cls = DomainClass.DEFAULT
        elif self.virtual_alias_domains.match(domain):
            cls = DomainClass.ALIAS
        elif self.virtual_mailbox_domains.match(domain):
            cls = DomainClass.VIRTUAL
        elif self.relay_domains.match(domain):
            cls = DomainClass.RELAY
        else:
            cls = DomainClass.DEFAULT
        # resolve.c: a routing operator left in the local part of a non-local
        # destination makes the destination uncertain.
        bare = dequote(local)
        routed = any(op in bare for op in "@!%")
        return Resolved(local, domain, cls, routed)


__all__ = ["AddressResolver", "DomainClass", "Resolved", "dequote", "split_address"]
