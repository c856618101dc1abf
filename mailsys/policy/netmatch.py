"""netmatch - Postfix match lists for client addresses and domain names.

DESCRIPTION
    A match list is what Postfix accepts in mynetworks, mydestination,
    relay_domains, smtpd_client_event_limit_exceptions and friends: a list of
    patterns tried in order, where the first pattern that matches decides.

        192.0.2.0/24  2001:db8::/32  [::1]/128  [2001:db8::1]  127.0.0.1
                      network blocks (CIDR) and single addresses, IPv4 or
                      IPv6; IPv6 may be written inside brackets
        example.com   a host or domain name; with parent-domain matching on
                      (Postfix parent_domain_matches_subdomains lists the
                      parameter) it also matches every subdomain
        .example.com  every subdomain of example.com, never the name itself
        !pattern      a match on pattern ends the search with "no match"
        /file/name    the patterns in that file, read once at compile time
        type:table    a lookup table: a client is looked up by host name
                      (and its parent domains) and by address; a domain by
                      name and parent domains. Any value found is a match.

    ClientMatcher matches a client (host name, address); DomainMatcher
    matches one domain name. Both compile their patterns once into
    ipaddress networks and lower-cased names, so a match costs a few
    comparisons and no parsing. Addresses are compared as addresses:
    IPv4-mapped IPv6 clients (::ffff:192.0.2.1) match IPv4 patterns.

    A bad pattern raises ConfigError naming the parameter, with Postfix's
    wording for the classic mistake of host bits set in a network block.

    Pure: no sockets, no DNS. Tables come from an injected opener
    (spec -> object with lookup(key) -> str | None), so tests can pass
    in-memory tables.

SEE ALSO
    Postfix match_list(3), namadr_list(3), domain_list(3); postconf(5)
    mynetworks, parent_domain_matches_subdomains.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from pathlib import Path
from typing import Callable, Iterable, Protocol

from mailsys.errors import ConfigError
from mailsys.frozen import frozen

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Table(Protocol):
    """What a lookup table must offer (mailsys.config.tables.Table)."""

    def lookup(self, key: str) -> str | None: ...


TableOpener = Callable[[str], Table]

# "type:name" (hash:/etc/x, inline:{...}, unix:passwd.byname). An IPv6
# address also holds colons, so it is tried as an address first.
_TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*:")

# Postfix's CHARS_COMMA_SP: what separates list elements inside a /file/name.
_FILE_SEP_RE = re.compile(r"[,\s]+")

_FILE_DEPTH_LIMIT = 10     # a file including itself must end, not recurse forever


# smtpd asks about the same few client addresses for every connection and
# command (limit exceptions, bare-newline exclusions, mynetworks, local
# client): parsing is pure and its result immutable, so remember the
# recent ones.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> IPAddress | None:
    """A client address as an ipaddress object, None when it is not one.

    Brackets and an IPv6 zone are dropped; IPv4-mapped IPv6 addresses become
    IPv4, as Postfix does before it matches mynetworks.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parent_domains(name: str) -> Iterable[str]:
    """example.com for a.b.example.com: every proper parent, nearest first.
    A leading dot is no label boundary: ".example.com" has the parent
    "com" only, as Postfix's match_hostname() walks the dots."""
    dot = name.find(".", 1)
    while dot >= 0:
        parent = name[dot + 1:]
        if parent:
            yield parent
        dot = name.find(".", dot + 1)


def _network(text: str, param: str) -> IPNetwork | None:
    """A network block or single address pattern, None when it is neither."""
    body = text
    prefix = ""
    if "/" in body:
        body, prefix = body.split("/", 1)
        prefix = "/" + prefix
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    try:
        ipaddress.ip_address(body)
    except ValueError:
        return None
    try:
        return ipaddress.ip_network(body + prefix, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(body + prefix, strict=False)
        except ValueError:
            raise ConfigError(f'bad net/mask pattern: "{text}"', param=param) from None
        raise ConfigError(f'non-null host address bits in "{text}", perhaps you should use '
                          f'"{loose}" instead', param=param) from None


@frozen
class _Rule:
    negate: bool
    networks: tuple[IPNetwork, ...] = ()    # any of these
    name: str = ""                          # host/domain pattern, lower case
    table: Table | None = None
    spec: str = ""                          # the text as written, for repr


def _expand(items: Iterable[str], param: str, depth: int = 0) -> Iterable[str]:
    """The list elements, with /file/name entries replaced by their contents."""
    for item in items:
        item = item.strip()
        if not item:
            continue
        negate = item.startswith("!")
        body = item[1:].strip() if negate else item
        if body.startswith("/"):
            if depth >= _FILE_DEPTH_LIMIT:
                raise ConfigError(f"{body}: files nested too deep", param=param)
            try:
                text = Path(body).read_text()
            except OSError as e:
                raise ConfigError(f"open {body}: {e.strerror}", param=param) from None
            words = []
            for line in text.splitlines():
                if line.lstrip().startswith("#"):
                    continue
                words.extend(w for w in _FILE_SEP_RE.split(line) if w)
            # A negated file negates each pattern in it, as Postfix does.
            for sub in _expand(words, param, depth + 1):
                yield ("!" + sub) if negate and not sub.startswith("!") else sub
            continue
        yield item


def _compile(items: Iterable[str], param: str, opener: TableOpener | None) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for item in _expand(items, param):
        negate = item.startswith("!")
        body = item[1:].strip() if negate else item
        if not body:
            raise ConfigError('empty pattern after "!"', param=param)
        net = _network(body, param)
        if net is not None:
            # Runs of plain networks collapse into one rule: one loop, no
            # per-pattern overhead for a long mynetworks.
            if rules and rules[-1].networks and rules[-1].negate == negate and not rules[-1].name \
                    and rules[-1].table is None:
                prev = rules[-1]
                rules[-1] = _Rule(negate, prev.networks + (net,), spec=prev.spec + " " + item)
            else:
                rules.append(_Rule(negate, (net,), spec=item))
        elif _TABLE_RE.match(body):
            if opener is None:
                raise ConfigError(f"table {body} not allowed here", param=param)
            rules.append(_Rule(negate, table=opener(body), spec=item))
        else:
            rules.append(_Rule(negate, name=body.lower().rstrip("."), spec=item))
    return tuple(rules)


def _name_matches(pattern: str, name: str, parent: bool) -> bool:
    if pattern.startswith("."):
        return name.endswith(pattern)
    if name == pattern:
        return True
    return parent and name.endswith("." + pattern) and len(name) > len(pattern) + 1


def _table_has_name(table: Table, name: str, parent: bool) -> bool:
    if table.lookup(name) is not None:
        return True
    for p in parent_domains(name):
        if table.lookup(p if parent else "." + p) is not None:
            return True
    return False


class _Matcher:
    """What both matchers share: compiled rules and the parent-domain flag."""

    __slots__ = ("rules", "parent")

    def __init__(self, rules: tuple[_Rule, ...], parent: bool) -> None:
        self.rules = rules
        self.parent = parent

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({' '.join(r.spec for r in self.rules)!r})"


class ClientMatcher(_Matcher):
    """A compiled client match list (mynetworks and the like).

    >>> m = ClientMatcher.compile(["127.0.0.0/8", "[::1]/128", "!192.0.2.1", "192.0.2.0/24"])
    >>> m.match("unknown", "192.0.2.7"), m.match("unknown", "192.0.2.1")
    (True, False)
    """

    # A session asks about its client several times (the anvil exemption,
    # smtpd_forbid_bare_newline_exclusions, permit_mynetworks, ...): a list
    # without tables keeps its last answer, as nothing can change it. (A
    # table may be rebuilt while mailsys runs.)
    __slots__ = ("_fixed", "_last")

    def __init__(self, rules: tuple[_Rule, ...], parent: bool) -> None:
        super().__init__(rules, parent)
        self._fixed = all(rule.table is None for rule in rules)
        self._last: tuple[str, object, bool] | None = None

    @classmethod
    def compile(cls, items: Iterable[str], *, param: str = "mynetworks",
                opener: TableOpener | None = None, parent: bool = True) -> "ClientMatcher":
        """Compile the list elements of parameter `param`.

        parent: whether "example.com" also matches its subdomains (true when
        parent_domain_matches_subdomains names the parameter).
        """
        return cls(_compile(items, param, opener), parent)

    def match(self, name: str, addr: str | IPAddress | None) -> bool:
        """Whether client name[addr] is in the list."""
        last = self._last
        if last is not None and last[0] == name and last[1] == addr:
            return last[2]
        hit = self._match(name, addr)
        if self._fixed:
            self._last = (name, addr, hit)
        return hit

    def _match(self, name: str, addr: str | IPAddress | None) -> bool:
        ip = addr if isinstance(addr, (ipaddress.IPv4Address, ipaddress.IPv6Address)) \
            else parse_address(addr or "")
        name = (name or "").lower().rstrip(".")
        for rule in self.rules:
            if rule.networks:
                hit = ip is not None and any(ip in n for n in rule.networks
                                             if n.version == ip.version)
            elif rule.table is not None:
                hit = (bool(name) and name != "unknown"
                       and _table_has_name(rule.table, name, self.parent)) \
                    or (ip is not None and rule.table.lookup(str(ip)) is not None)
            else:
                hit = bool(name) and _name_matches(rule.name, name, self.parent)
            if hit:
                return not rule.negate
        return False


class DomainMatcher(_Matcher):
    """A compiled domain match list (mydestination, relay_domains, ...)."""

    __slots__ = ()

    @classmethod
    def compile(cls, items: Iterable[str], *, param: str = "mydestination",
                opener: TableOpener | None = None, parent: bool = False) -> "DomainMatcher":
        return cls(_compile(items, param, opener), parent)

    def match(self, domain: str) -> bool:
        """Whether domain (any case, trailing dot allowed) is in the list."""
        domain = domain.lower().rstrip(".")
        if not domain:
            return False
        for rule in self.rules:
            if rule.networks:
                # An address pattern in a domain list matches the literal [addr].
                ip = parse_address(domain) if domain.startswith("[") else None
                hit = ip is not None and any(ip in n for n in rule.networks
                                             if n.version == ip.version)
            elif rule.table is not None:
                hit = _table_has_name(rule.table, domain, self.parent)
            else:
                hit = _name_matches(rule.name, domain, self.parent)
            if hit:
                return not rule.negate
        return False
