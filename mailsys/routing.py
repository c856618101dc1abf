"""routing - where a recipient goes: transport, next hop, and the MX hosts to try.

SYNOPSIS
    from mailsys.routing import RoutingSettings, resolve, parse_nexthop, mx_hosts, drop_self
    route = resolve("bob@example.org", settings)     # Route("smtp", "example.org", DEFAULT)
    hop = parse_nexthop(route.nexthop)                # NextHop("example.org", 25, mx_lookup=True)
    hosts = mx_hosts(hop.host, [(10, "mx1.example.org."), (10, "mx2.example.org.")], rng)
    # smtp resolves each host to addresses, then:
    targets = drop_self(hop.host, [(10, "mx1.example.org", "192.0.2.1"), ...], own_addresses)

DESCRIPTION
    The pure half of Postfix's trivial-rewrite resolve(8)/transport(5) and of
    the smtp client's MX handling (src/trivial-rewrite/resolve.c,
    transport.c; src/smtp/smtp_addr.c). qmgr calls resolve() to group
    recipients by (transport, next hop); the smtp delivery agent parses the
    next hop, asks DNS (dnspython, in the agent) and hands the answers here
    as plain tuples. Nothing here does I/O.

    Address classes, in Postfix's order (resolve.c):

        LOCAL    the domain is in mydestination, or is an address literal
                 [a.b.c.d] of this host: $local_transport, whose next hop
                 defaults to $myhostname
        ALIAS    virtual_alias_domains: aliases are expanded by cleanup, so
                 an address still here has no alias: error transport,
                 "5.1.1 User unknown in virtual alias table"
        VIRTUAL  virtual_mailbox_domains: $virtual_transport
        RELAY    relay_domains: $relay_transport
        DEFAULT  anything else: $default_transport

    An address in relocated_maps (searched as cleanup's maps are) goes to
    the error transport, "5.1.6 User has moved to NEW", whatever its class.

    For DEFAULT, sender_dependent_default_transport_maps (searched with
    the envelope sender, then its @domain; the null sender as
    $empty_address_default_transport_maps_lookup_key) may replace
    $default_transport. For RELAY and DEFAULT the next hop is, by
    decreasing precedence, the next hop written in the transport parameter
    ("smtp:[gw.example]"), sender_dependent_relayhost_maps (searched the
    same way), $relayhost, then the recipient domain; a DUNNO result in
    either map is no result. For VIRTUAL it is the transport parameter's
    next hop or the recipient domain.

    mailsys has one mailbox delivery agent, services/local, for both
    mydestination users and virtual mailboxes; Postfix has local(8) and
    virtual(8). The transport names still come from local_transport and
    virtual_transport as in Postfix, so "relay=local" / "relay=virtual" in
    mail.log and master.cf service names keep Postfix's meaning; a mailsys
    master.cf declares the virtual transport as a service that runs the local
    agent (``virtual unix - n n - - local``), and the agent tells the two
    apart by Route.address_class (VIRTUAL: virtual_mailbox_maps under
    virtual_mailbox_base; LOCAL: the local user table).

    transport_maps then overrides any class (transport(5)). For a recipient
    user+ext@sub.example.com the keys tried are, first hit wins, each key in
    every table in order before the next key:

        user+ext@sub.example.com, user@sub.example.com (with a
        recipient_delimiter), sub.example.com, .example.com, .com, *

    A result is "transport:nexthop". An empty transport keeps the class's
    transport (and its next hop unless one is given); a transport with an
    empty next hop delivers to the recipient domain, or for the error
    transport says "Address is undeliverable". Without a colon the whole
    result is the transport. For the error and retry transports the next
    hop is the reason text, optionally led by a status: error_status().

    Next-hop syntax (smtp(8), transport(5)):

        example.com          MX lookup, port 25
        example.com:2526     MX lookup, deliver to port 2526
        [mail.example.com]   no MX lookup: the host's own addresses
        [192.0.2.1]:2526     an address; IPv6 as [2001:db8::1] or
                             [ipv6:2001:db8::1], with :port after the bracket

    LMTP next hops (lmtp(8)) add ``unix:/path/name``, ``unix:private/name``
    and ``inet:host[:port]``, and never look up MX records; their default
    port is 24: parse_lmtp_nexthop().

    A port may be a number or a service name from /etc/services. relayhost
    and transport next hops may list several destinations, tried in order
    (Postfix 3.5): parse_nexthops("[a.example]:587, [b.example]:587").

    MX hosts come sorted by preference, equal preferences in random order
    (RFC 5321 5.1) from an injected random.Random. No MX records means the
    domain is its own MX at preference 0 (the implicit MX). A single MX
    record for "." is RFC 7505's null MX: the domain takes no mail (as in
    Postfix, a "." beside real exchangers makes the whole answer one).

    Loop detection as in smtp_addr.c: when one of the MX addresses is this
    host, every address at that preference or a worse one is dropped;
    if nothing is left, mail "loops back to myself" (5.4.6), or, when
    better MX hosts existed but none resolved, the primary relay is
    unreachable (4.4.4).

    Failures are RouteError(status, reason), with Postfix's status codes and
    wording; a null MX is 5.1.0, as Postfix's smtp_addr.c writes it (not
    RFC 7505's 5.1.10, which Postfix's smtpd uses when it refuses such a
    recipient).
"""

from __future__ import annotations

import enum
import ipaddress
import random
import re
from typing import Any, Callable, Collection, Iterable, Protocol, Sequence

from mailsys.frozen import frozen
from mailsys.message.address import lookup_keys
from mailsys.smtp.address import min_user, numeric_literal, numeric_name

__all__ = [
    "SMTP_PORT", "LMTP_PORT", "NULL_MX_STATUS", "BadNextHop", "RouteError", "NextHop",
    "parse_nexthop", "parse_lmtp_nexthop", "service_port",
    "parse_nexthops", "AddressClass", "Route", "BAD_SYNTAX", "DomainList", "DomainSet",
    "LookupTable",
    "RoutingSettings", "resolve", "resolved_address", "transport_lookup", "first_lookup", "split_transport", "error_status",
    "MxHost", "MxAddress", "mx_hosts", "drop_self", "balance_inet_protocols",
]

SMTP_PORT = 25
LMTP_PORT = 24          # RFC 2033 and Postfix's lmtp_tcp_port
NULL_MX_STATUS = "5.1.0"
ALIAS_REASON = "5.1.1 User unknown in virtual alias table"
UNDELIVERABLE = "Address is undeliverable"


class BadNextHop(ValueError):
    """A next-hop text that is not [host]:port syntax (a configuration error)."""


class RouteError(Exception):
    """Mail for a destination cannot be delivered as routed: status and reason."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason

    @property
    def permanent(self) -> bool:
        """A 5.x.x status: bounce; otherwise defer and retry."""
        return self.status.startswith("5")


# -- next-hop syntax ---------------------------------------------------------

@frozen
class NextHop:
    """One delivery destination: a domain to look up MX records for, or a
    host; for LMTP also a UNIX-domain socket (``socket_path``, port 0)."""

    host: str
    port: int = SMTP_PORT
    mx_lookup: bool = True
    socket_path: str = ""

    def __str__(self) -> str:
        """The destination written back in next-hop syntax."""
        if self.socket_path:
            return f"unix:{self.socket_path}"
        text = self.host if self.mx_lookup else f"[{self.host}]"
        return text if self.port == SMTP_PORT else f"{text}:{self.port}"


# Labels of letters, digits, "_" and inner "-"; UTF-8 names are allowed, as
# Postfix's valid_utf8_hostname() allows them.
_HOSTNAME = re.compile(r"(?=.{1,255}$)\w(?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)*\.?")


def _port(text: str, default: int, spec: str) -> int:
    if not text:
        return default
    if text.isdigit():
        port = int(text)
    else:
        # Imported here: host.py imports socket lazily, and only a service
        # name needs it.
        from mailsys.config.host import tcp_port
        port = tcp_port(text) or 0
        if not port:
            raise BadNextHop(f'unknown service "{text}" in next hop "{spec}"')
    if not 0 < port < 65536:
        raise BadNextHop(f'bad port "{text}" in next hop "{spec}"')
    return port


def parse_nexthop(text: str, default_port: int = SMTP_PORT) -> NextHop:
    """parse_nexthop - "host", "host:port", "[host]", "[host]:port" into a NextHop."""
    spec = text.strip()
    if spec.startswith("["):
        close = spec.find("]")
        if close < 0:
            raise BadNextHop(f'missing "]" in next hop "{spec}"')
        host, rest = spec[1:close], spec[close + 1:]
        if rest and not rest.startswith(":"):
            raise BadNextHop(f'garbage after "]" in next hop "{spec}"')
        port = _port(rest[1:], default_port, spec)
        if host[:5].lower() == "ipv6:":
            host = host[5:]
        if ":" in host:
            try:
                host = str(ipaddress.IPv6Address(host))
            except ValueError:
                raise BadNextHop(f'bad IPv6 address "{host}" in next hop "{spec}"') from None
        elif not _HOSTNAME.fullmatch(host):
            raise BadNextHop(f'bad host name "{host}" in next hop "{spec}"')
        return NextHop(host.rstrip(".").lower(), port, mx_lookup=False)
    host, colon, port_text = spec.rpartition(":")
    if not colon:
        host, port_text = spec, ""
    if not _HOSTNAME.fullmatch(host):
        raise BadNextHop(f'bad host name "{host}" in next hop "{spec}"')
    return NextHop(host.rstrip(".").lower(), _port(port_text, default_port, spec))


def parse_lmtp_nexthop(text: str, default_port: int = LMTP_PORT) -> NextHop:
    """parse_lmtp_nexthop - an LMTP destination (lmtp(8), smtp_connect.c).

    ``unix:/path`` or ``unix:private/name`` is a UNIX-domain socket (a
    relative path is taken from $queue_directory by the caller, as
    Postfix's lmtp runs there); ``inet:host:port``, ``host:port``,
    ``[host]:port`` and ``host`` a TCP server, default_port
    ($lmtp_tcp_port, 24) when none is named. LMTP never looks up MX
    records: a host is always its own addresses."""
    spec = text.strip()
    if spec[:5].lower() == "unix:":
        path = spec[5:]
        if not path:
            raise BadNextHop(f'empty socket path in next hop "{spec}"')
        return NextHop("", 0, mx_lookup=False, socket_path=path)
    if spec[:5].lower() == "inet:":
        spec = spec[5:]
    hop = parse_nexthop(spec, default_port)
    return NextHop(hop.host, hop.port, mx_lookup=False)


def service_port(text: str, spec: str = "") -> int:
    """A port number or /etc/services name (smtp_tcp_port, lmtp_tcp_port)."""
    return _port(text.strip(), 0, spec or text) if text.strip() else 0


def parse_nexthops(text: str, default_port: int = SMTP_PORT) -> tuple[NextHop, ...]:
    """parse_nexthops - a list of destinations separated by commas or white space."""
    return tuple(parse_nexthop(item, default_port) for item in re.split(r"[\s,]+", text) if item)


# -- address classes and transport_maps ----------------------------------------

class AddressClass(enum.Enum):
    """Postfix's address classes (trivial-rewrite RESOLVE_CLASS_*)."""

    LOCAL = "local"
    ALIAS = "alias"
    VIRTUAL = "virtual"
    RELAY = "relay"
    DEFAULT = "default"


@frozen
class Route:
    """Where one recipient goes: qmgr's grouping key and the agent's destination."""

    transport: str
    nexthop: str
    address_class: AddressClass


# qmgr_message.c: a recipient the resolver flags as bad syntax goes to the
# error transport; local(8) bounces an alias or .forward address that does.
BAD_SYNTAX = Route("error", "5.1.3 bad address syntax", AddressClass.DEFAULT)


class DomainList(Protocol):
    """A domain match list (mydestination, relay_domains, ...)."""

    def match(self, domain: str) -> bool: ...


class LookupTable(Protocol):
    """A lookup table (mailsys.config.tables.Table)."""

    def lookup(self, key: str) -> str | None: ...


@frozen
class DomainSet:
    """A domain match list of names only (mydestination, relay_domains, ...).

    "example.com" matches that name, and with parent=True every subdomain
    too (Postfix parent_domain_matches_subdomains, whose default lists
    relay_domains but not mydestination or the virtual domain lists);
    ".example.com" matches every subdomain and never the name itself.
    Names are compared case-insensitively without a trailing dot.

    Lists that name lookup tables, /file/name patterns or !negations need
    the full match-list implementation, which has the same match() method;
    of() refuses them rather than read them as domain names.
    """

    names: frozenset[str] = frozenset()
    parent: bool = False

    @classmethod
    def of(cls, items: Iterable[str], *, parent: bool = False) -> DomainSet:
        names = set()
        for item in items:
            if not item:
                continue
            if ":" in item or item.startswith(("/", "!")):
                raise ValueError(f'"{item}" is not a domain name: this list needs a table-aware matcher')
            names.add(item.lower().rstrip("."))
        return cls(frozenset(names), parent)

    def match(self, domain: str) -> bool:
        name = domain.lower().rstrip(".")
        if name in self.names:
            return True
        # From the second character on, as Postfix's match_hostname() walks
        # the dots: ".relay.example" (an empty first label) is no subdomain.
        for i in range(1, len(name)):
            if name[i] == "." and (name[i:] in self.names
                                   or (self.parent and name[i + 1:] in self.names)):
                return True
        return False


@frozen
class RoutingSettings:
    """The main.cf values resolve() reads, already expanded.

    own_addresses are this host's addresses, for address literals
    (user@[192.0.2.1]) that mean "here".
    """

    myhostname: str
    mydestination: DomainList
    virtual_alias_domains: DomainList = DomainSet()
    virtual_mailbox_domains: DomainList = DomainSet()
    relay_domains: DomainList = DomainSet()
    relayhost: str = ""
    local_transport: str = "local"
    virtual_transport: str = "virtual"
    relay_transport: str = "relay"
    default_transport: str = "smtp"
    transport_maps: tuple[LookupTable, ...] = ()
    recipient_delimiter: str = ""
    own_addresses: frozenset[str] = frozenset()
    relocated_maps: tuple[LookupTable, ...] = ()
    sender_relayhost_maps: tuple[LookupTable, ...] = ()          # sender_dependent_relayhost_maps
    sender_transport_maps: tuple[LookupTable, ...] = ()          # ..._default_transport_maps
    empty_sender_relayhost_key: str = "<>"
    empty_sender_transport_key: str = "<>"
    allow_min_user: bool = False
    resolve_null_domain: bool = False
    resolve_numeric_domain: bool = False

    @classmethod
    def from_config(cls, cfg: Any, *, open_table: Callable[[str], LookupTable],
                    domains: Callable[[str], DomainList] | None = None,
                    own_addresses: Iterable[str] = (), probe: bool = False) -> RoutingSettings:
        """Settings from a mailsys.config.Config.

        probe: the settings of address verification probes, whose
        transports, relayhost and transport tables are the address_verify_*
        parameters (Postfix's trivial-rewrite resolves a probe with them).

        open_table opens one transport_maps entry (``lambda s:
        tables.open_table(s, cfg)``); domains builds the match list of a
        parameter by name (default: DomainSet of its names, relay_domains
        matching subdomains as Postfix's default parent_domain_matches_subdomains
        has it).
        """
        make = domains or (lambda name: DomainSet.of(cfg[name], parent=name == "relay_domains"))

        def get(name: str) -> Any:
            # Address verification probes have their own copies of the
            # transport settings (address_verify_relayhost, ...).
            return cfg[f"address_verify_{name}"] if probe else cfg[name]
        return cls(myhostname=cfg.myhostname, mydestination=make("mydestination"),
                   virtual_alias_domains=make("virtual_alias_domains"),
                   virtual_mailbox_domains=make("virtual_mailbox_domains"),
                   relay_domains=make("relay_domains"), relayhost=get("relayhost"),
                   local_transport=get("local_transport"),
                   virtual_transport=get("virtual_transport"),
                   relay_transport=get("relay_transport"),
                   default_transport=get("default_transport"),
                   transport_maps=tuple(open_table(s) for s in get("transport_maps")),
                   recipient_delimiter=cfg.recipient_delimiter,
                   own_addresses=frozenset(_normal_address(a) for a in own_addresses),
                   relocated_maps=tuple(open_table(s) for s in cfg.relocated_maps),
                   sender_relayhost_maps=tuple(
                       open_table(s) for s in get("sender_dependent_relayhost_maps")),
                   sender_transport_maps=tuple(
                       open_table(s) for s in get("sender_dependent_default_transport_maps")),
                   empty_sender_relayhost_key=cfg.empty_address_relayhost_maps_lookup_key,
                   empty_sender_transport_key=(
                       cfg.empty_address_default_transport_maps_lookup_key),
                   allow_min_user=cfg.allow_min_user,
                   resolve_null_domain=cfg.resolve_null_domain,
                   resolve_numeric_domain=cfg.resolve_numeric_domain)


def split_transport(value: str) -> tuple[str, str]:
    """split_transport - "smtp:[gw]:587" -> ("smtp", "[gw]:587"); "smtp" -> ("smtp", "")."""
    transport, _, nexthop = value.strip().partition(":")
    return transport.strip(), nexthop.strip()


def error_status(text: str, default: str = "5.0.0") -> tuple[str, str]:
    """error_status - ("5.1.1", "mailbox unavailable") from an error transport's next hop.

    error(8): the reason may start with an enhanced status code; without one
    the error transport uses 5.0.0 and the retry transport 4.0.0. The class
    of a given code is forced to the default's (an error: entry never defers).
    """
    m = re.match(r"([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)", text)
    if not m:
        return default, text or UNDELIVERABLE
    return f"{default[0]}.{m.group(2)}.{m.group(3)}", text[m.end():] or UNDELIVERABLE


def _split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.rpartition("@")
    return (local, domain) if at else (address, "")


def _strip_extension(local: str, delimiters: str) -> str:
    """user+ext -> user (Postfix strip_addr: the first delimiter character found)."""
    if not delimiters:
        return local
    cut = min((i for i in (local.find(c) for c in delimiters) if i > 0), default=-1)
    return local[:cut] if cut > 0 else local


def transport_lookup(address: str, tables: Sequence[LookupTable],
                     recipient_delimiter: str = "") -> str | None:
    """transport_lookup - the transport_maps result for address, in transport(5) order."""
    if not tables:
        return None
    address = address.lower()
    local, domain = _split_address(address)
    keys = [address]
    stripped = _strip_extension(local, recipient_delimiter)
    if stripped != local and domain:
        keys.append(f"{stripped}@{domain}")
    if domain:
        keys.append(domain)
        keys.extend(domain[i:] for i, c in enumerate(domain) if c == "." and i > 0)
    keys.append("*")
    return first_lookup(tables, keys)


def first_lookup(tables: Sequence[LookupTable], keys: Sequence[str]) -> str | None:
    """The first result for keys in order, each key asked of every table
    before the next key (Postfix's maps_find over a list of tables)."""
    for key in keys:
        for table in tables:
            value = table.lookup(key)
            if value is not None:
                return value
    return None


def _normal_address(text: str) -> str:
    text = text.strip("[]")
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text.lower()


def _sender_lookup(tables: Sequence[LookupTable], sender: str | None, empty_key: str,
                   s: RoutingSettings) -> str | None:
    """A sender_dependent_*_maps result for sender (None: none, or DUNNO)."""
    if not tables or sender is None:
        return None
    if sender:
        keys = [k for k, _ in lookup_keys(sender.lower(), s.recipient_delimiter,
                                          s.mydestination.match)]
    else:
        keys = [empty_key]
    value = first_lookup(tables, keys)
    return None if value is None or value.strip().upper() == "DUNNO" else value.strip()


def _class_route(domain: str, s: RoutingSettings, sender: str | None = None) -> Route:
    """The route of an address class before transport_maps (resolve.c)."""
    literal = domain.startswith("[") and domain.endswith("]")
    if (literal and _normal_address(domain) in s.own_addresses) or s.mydestination.match(domain):
        transport, nexthop = split_transport(s.local_transport)
        return Route(transport, nexthop or s.myhostname, AddressClass.LOCAL)
    if s.virtual_alias_domains.match(domain):
        return Route("error", ALIAS_REASON, AddressClass.ALIAS)
    if s.virtual_mailbox_domains.match(domain):
        transport, nexthop = split_transport(s.virtual_transport)
        return Route(transport, nexthop or domain, AddressClass.VIRTUAL)
    if s.relay_domains.match(domain):
        cls, param = AddressClass.RELAY, s.relay_transport
    else:
        cls = AddressClass.DEFAULT
        param = _sender_lookup(s.sender_transport_maps, sender, s.empty_sender_transport_key,
                               s) or s.default_transport
    transport, nexthop = split_transport(param)
    if not nexthop:
        nexthop = (_sender_lookup(s.sender_relayhost_maps, sender, s.empty_sender_relayhost_key, s)
                   or s.relayhost.strip() or domain)
    return Route(transport, nexthop, cls)


def resolve(address: str, settings: RoutingSettings, sender: str | None = None) -> Route:
    """resolve - the transport and next hop for one (fully qualified) recipient.

    An address without a domain (smtpd's "RCPT TO:<user>"; cleanup
    qualifies queued ones with $myorigin) resolves as user@$myhostname, as
    resolve.c re-resolves it: local when $myhostname is in $mydestination,
    relayed like any other address when it is not. sender, the envelope sender
    ("" for the null sender), is looked up in the sender-dependent maps;
    None skips them.

    What resolve.c flags as bad syntax goes to the error transport: with
    allow_min_user = no an address that begins with "-" (no command may take
    it for an option), with resolve_null_domain = no the null domain
    (user@; yes makes it local), and a domain of digits and dots, unless
    resolve_numeric_domain = yes and it is an IPv4 address, which then
    stands for its address literal (user@192.0.2.1 as user@[192.0.2.1]).
    """
    if not settings.allow_min_user and min_user(address):
        return BAD_SYNTAX
    _, domain = _split_address(address)
    domain = domain.lower().rstrip(".")
    if not domain:
        if address.endswith("@") and not settings.resolve_null_domain:
            return BAD_SYNTAX
        # resolve.c: "Re-resolve with @$myhostname for backwards
        # compatibility": local only when $myhostname is (mydestination).
        domain = settings.myhostname.lower().rstrip(".")
        address = f"{address.removesuffix('@')}@{domain}"
        route = _class_route(domain, settings, sender)
    else:
        if numeric_name(domain):
            literal = settings.resolve_numeric_domain and numeric_literal(domain)
            if not literal:
                return BAD_SYNTAX
            # The literal is the address from here on: relocated_maps and
            # transport_maps see user@[192.0.2.1], as resolve.c rewrites it.
            domain = literal
            address = f"{_split_address(address)[0]}@{literal}"
        route = _class_route(domain, settings, sender)
    if settings.relocated_maps:
        keys = [k for k, _ in lookup_keys(address.lower(), settings.recipient_delimiter,
                                          lambda d: route.address_class is AddressClass.LOCAL)]
        moved = first_lookup(settings.relocated_maps, keys)
        if moved is not None:
            # trivial-rewrite: mail that got past smtpd bounces to the error transport.
            return Route("error", f"5.1.6 User has moved to {moved.strip()}",
                         route.address_class)
    value = transport_lookup(address, settings.transport_maps, settings.recipient_delimiter)
    if value is None:
        return route
    # transport.c update_entry().
    transport, nexthop = split_transport(value)
    if not transport:
        return Route(route.transport, nexthop or route.nexthop, route.address_class)
    if not nexthop:
        nexthop = UNDELIVERABLE if transport == "error" else domain or settings.myhostname
    return Route(transport, nexthop, route.address_class)


def resolved_address(address: str, settings: RoutingSettings) -> str:
    """resolved_address - the recipient as resolve() delivers it.

    Postfix's resolver answers with the address as well as the route, and
    qmgr delivers to that one (qmgr_message.c: "The result address may
    differ from the one specified by the sender"). resolve.c gives every
    address the user@domain form: one without a domain (user, or user@
    with resolve_null_domain = yes) gets @$myhostname, and with
    resolve_numeric_domain = yes user@192.0.2.1 is user@[192.0.2.1].
    Postfix 3.7 then logs to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>. An
    address resolve() finds bad comes back unchanged, as any other.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        return f"{address}@{settings.myhostname}" if address else address
    if not domain:
        return f"{address}{settings.myhostname}" if settings.resolve_null_domain else address
    if settings.resolve_numeric_domain and domain[-1:].isdigit() and numeric_name(domain):
        literal = numeric_literal(domain)
        if literal:
            return f"{local}@{literal}"
    return address


# -- MX hosts and loop detection -----------------------------------------------

@frozen
class MxHost:
    preference: int
    host: str


@frozen
class MxAddress:
    preference: int
    host: str
    address: str


def _host(name: str) -> str:
    return name.rstrip(".").lower()


def mx_hosts(domain: str, answers: Iterable[tuple[int, str]],
             rng: random.Random | None) -> tuple[MxHost, ...]:
    """mx_hosts - the hosts to try for domain, best first, from its MX answers.

    answers are (preference, exchange) pairs as DNS gave them, in any order,
    names with or without the trailing dot; none at all (NODATA) means the
    implicit MX. Raises RouteError for a null MX. Without rng
    (smtp_randomize_addresses = no) equal preferences keep the DNS order.
    """
    records = [(int(pref), _host(name)) for pref, name in answers]
    if not records:
        return (MxHost(0, _host(domain)),)
    if any(not name for _, name in records):
        # Postfix dns_get_answer(): one "." in the answer makes it all a null
        # MX, real exchangers beside it or not.
        raise RouteError(NULL_MX_STATUS, f"Domain {domain} does not accept mail (nullMX)")
    # dns_rr_shuffle() then a stable sort by preference, as smtp_addr.c.
    if rng is not None:
        rng.shuffle(records)
    records.sort(key=lambda r: r[0])
    return tuple(MxHost(pref, host) for pref, host in records)


def _normal_own(own: Collection[str | tuple[str, int]]) -> set[str | tuple[str, int]]:
    return {_normal_address(o) if isinstance(o, str) else (_normal_address(o[0]), o[1])
            for o in own}


def drop_self(domain: str, addresses: Iterable[tuple[int, str, str]],
              own: Collection[str | tuple[str, int]], *, port: int = SMTP_PORT,
              best_preference: int | None = None) -> tuple[MxAddress, ...]:
    """drop_self - the MX addresses to try, without this host and worse MX hosts.

    addresses are (preference, host, address) in the order to try (the MX
    order of mx_hosts(), each host's addresses in turn). own holds this
    host's addresses as normalized strings, which match on any port as in
    Postfix, or (address, port) pairs, which match only mail to that port
    (a test peer on 127.0.0.1:2526 is not a loop for a server on
    127.0.0.1:2525). best_preference is the best preference DNS listed,
    resolved or not; it tells a loop from an unreachable primary.
    """
    found = [MxAddress(p, _host(h), a) for p, h, a in addresses]
    mine = _normal_own(own)
    self_pref = next((a.preference for a in found
                      if (addr := _normal_address(a.address)) in mine or (addr, port) in mine),
                     None)
    if self_pref is None:
        return tuple(found)
    kept = tuple(a for a in found if a.preference < self_pref)
    if kept:
        return kept
    best_found = min(a.preference for a in found)
    if best_preference is not None and best_preference != best_found:
        raise RouteError("4.4.4", f"unable to find primary relay for {domain}")
    raise RouteError("5.4.6", f"mail for {domain} loops back to myself")


def balance_inet_protocols(addresses: Sequence[MxAddress], limit: int) -> list[MxAddress]:
    """smtp_balance_inet_protocols: when IPv4 and IPv6 addresses together
    exceed smtp_mx_address_limit, keep some of each family, so that a
    destination whose best MX hosts are mostly IPv6 stays reachable over
    IPv4 (Postfix smtp_addr.c smtp_balance_inet_proto()). A family with at
    most half the limit keeps all its addresses and the other fills the
    rest; otherwise each gets half, the odd one going to the family of the
    first address. The order is kept; what is left is within the limit."""
    v6 = sum(1 for a in addresses if ":" in a.address)
    v4 = len(addresses) - v6
    if not (v4 and v6 and v4 + v6 > limit):
        return list(addresses)
    if v6 <= limit // 2:
        v6_keep, v4_keep = v6, limit - v6
    elif v4 <= limit // 2:
        v4_keep, v6_keep = v4, limit - v4
    else:
        v4_keep = (limit + (":" not in addresses[0].address)) // 2
        v6_keep = limit - v4_keep
    out = []
    for a in addresses:
        if ":" in a.address:
            if v6_keep > 0:
                out.append(a)
                v6_keep -= 1
        elif v4_keep > 0:
            out.append(a)
            v4_keep -= 1
    return out
