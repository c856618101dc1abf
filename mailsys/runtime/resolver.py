"""resolver - DNS lookups for the smtp delivery agent, with dnspython on trio.

SYNOPSIS
    resolver = Resolver.from_config(cfg)          # dns_nameservers, else resolv.conf
    answers = await resolver.mx("example.org")    # [(10, "mx1.example.org"), ...]; [] = no MX
    addrs = await resolver.addresses("mx1.example.org")   # ["192.0.2.1", "2001:db8::1"]

DESCRIPTION
    A thin shell over dns.asyncresolver.Resolver, made (and dnspython
    imported) on the first DNS query, so an smtp process that never asks
    DNS does not carry it. The trio backend is passed
    explicitly on every query, so nothing depends on sniffio's detection
    (STYLE.md (d), dnspython). Which name servers are asked:

      dns_nameservers  a mailsys parameter: a list of ``address[:port]``
                       (IPv6 as ``[2001:db8::1]:5353``). Every lookup goes
                       to these servers, for sites with split DNS and for
                       tests that run a small DNS server on loopback.
      (empty)          the system's /etc/resolv.conf, as dnspython reads it.

    Failures become DnsError with Postfix's split (src/dns/dns_lookup.c):
    NOTFOUND (NXDOMAIN: the name does not exist), RETRY (SERVFAIL, REFUSED,
    a timeout, no server answering: try again later). A name that exists
    without records of the type asked for is not an error: mx() returns []
    (the caller then uses the implicit MX) and addresses() returns [] for
    that family.

    inet_protocols picks the address families addresses() asks for: A for
    ipv4, AAAA for ipv6, both for all. smtp_host_lookup says how host
    addresses are found: dns (the default), native (the system's
    getaddrinfo: /etc/hosts, nsswitch), or both (native when DNS finds
    nothing). MX lookups always use DNS.

    smtp_dns_reply_filter (Postfix dns_rr_filter.c; smtpd's lookups use
    smtpd_dns_reply_filter the same way, mailsys.runtime.smtpd_dns): each record of a DNS
    answer is asked of the tables as ``name. ttl IN type [preference]
    value``; IGNORE drops it ("ignoring DNS RR: ..."), any other action
    fails the lookup ("Invalid DNS reply filter syntax", try again), and
    an answer with every record dropped is DnsError kind POLICY ("DNS
    reply filter drops all results", 4.7.0 for the delivery).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import structlog
import trio

# dnspython (~3 MB per process) is imported on the first DNS lookup, not
# here: an smtp process with smtp_dns_support_level = disabled or a
# [bracketed] relayhost never needs it.

from mailsys.errors import ConfigError

__all__ = ["DnsError", "NOTFOUND", "RETRY", "POLICY", "Resolver", "parse_nameserver",
           "dns_disabled", "reply_filter"]

NOTFOUND = "notfound"
RETRY = "retry"
POLICY = "policy"       # smtp_dns_reply_filter dropped every record of an answer

log = structlog.get_logger()

# Seconds one lookup may take over all its retries. Postfix leaves this to
# the system resolver (RES_TIMEOUT 5 s times RES_DFLRETRY 2 attempts).
DEFAULT_LIFETIME = 10.0


class DnsError(Exception):
    """A failed lookup: kind is NOTFOUND, RETRY or POLICY; text is Postfix's
    wording. ``detail`` is a reply filter's trouble (dns_lookup.c: "Error
    looking up name=X type=Y: ...", with no "Host or domain name not found."
    in front: ``reason``)."""

    def __init__(self, kind: str, name: str, rdtype: str, detail: str = "") -> None:
        self.kind = kind
        self.name = name
        self.rdtype = rdtype
        self.detail = detail
        if detail:
            super().__init__(f"Error looking up name={name} type={rdtype}: {detail}")
            return
        text = "Host not found" if kind == NOTFOUND else "Host not found, try again"
        super().__init__(f"Name service error for name={name} type={rdtype}: {text}")

    @property
    def temporary(self) -> bool:
        return self.kind != NOTFOUND

    @property
    def reason(self) -> str:
        """The delivery status text Postfix gives this failure."""
        return str(self) if self.detail else f"Host or domain name not found. {self}"


def dns_disabled(cfg) -> bool:
    """smtp_dns_support_level = disabled (or the older disable_dns_lookups = yes):
    no MX lookups, host addresses from the system (Postfix smtp(8))."""
    return cfg.smtp_dns_support_level == "disabled" or (
        not cfg.smtp_dns_support_level and cfg.disable_dns_lookups)


def parse_nameserver(spec: str) -> tuple[str, int]:
    """``192.0.2.53``, ``192.0.2.53:5353``, ``[2001:db8::53]:53``, ``2001:db8::53``."""
    text = spec.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"bad name server {spec!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit():
            raise ValueError(f"bad name server {spec!r}")
        port = int(p)
    else:
        host = text
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"name server {spec!r} is not an IP address") from None
    if not 0 < port < 65536:
        raise ValueError(f"bad port in name server {spec!r}")
    return address, port


def dns_resolver(nameservers: Sequence[tuple[str, int]], lifetime: float):
    """dnspython's async resolver asking nameservers ((address, port) pairs,
    from parse_nameserver), else the servers of resolv.conf; every lookup
    ends within lifetime seconds. Imports dnspython: call it only where DNS
    is used."""
    import dns.asyncresolver
    import dns.nameserver
    import dns.resolver
    if nameservers:
        res = dns.asyncresolver.Resolver(configure=False)
        res.nameservers = [dns.nameserver.Do53Nameserver(a, p) for a, p in nameservers]
    else:
        try:
            res = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            # No usable resolv.conf: the C library would ask a resolver on
            # this host; so do we, rather than refuse to start.
            res = dns.asyncresolver.Resolver(configure=False)
            res.nameservers = ["127.0.0.1"]
    res.lifetime = lifetime
    res.timeout = min(res.timeout, lifetime)
    return res


def reply_filter(cfg, name: str) -> list:
    """The tables of smtp_dns_reply_filter or smtpd_dns_reply_filter (name)."""
    from mailsys.config.tables import open_table
    return [open_table(spec, cfg) for spec in cfg[name]]


class Resolver:
    """MX and address lookups against the configured name servers."""

    def __init__(self, nameservers: Sequence[tuple[str, int]] = (), *,
                 lifetime: float = DEFAULT_LIFETIME, ipv4: bool = True, ipv6: bool = True,
                 host_lookup: Sequence[str] = ("dns",), rr_filter: Sequence = (),
                 rr_filter_name: str = "smtp_dns_reply_filter") -> None:
        self._nameservers = tuple(nameservers)
        self._lifetime = lifetime
        self._res = None        # dnspython's resolver, made on the first lookup
        self._backend = None
        self._types = (["A"] if ipv4 else []) + (["AAAA"] if ipv6 else [])
        self._dns_hosts = "dns" in host_lookup or not host_lookup
        self._native_hosts = "native" in host_lookup
        # smtp_dns_reply_filter: tables asked with each record as text.
        self._rr_filter = tuple(rr_filter)
        self._rr_filter_name = rr_filter_name

    @classmethod
    def from_config(cls, cfg, *, lifetime: float = DEFAULT_LIFETIME,
                    program: str = "smtp") -> Resolver:
        """The resolver of the smtp or lmtp program (cfg: its client_config view)."""
        try:
            servers = [parse_nameserver(s) for s in cfg["dns_nameservers"]]
        except ValueError as e:
            raise ConfigError(f"dns_nameservers: {e}", param="dns_nameservers") from None
        protocols = set(cfg["inet_protocols"])
        both = "all" in protocols
        lookup = ("native",) if dns_disabled(cfg) else tuple(cfg["smtp_host_lookup"])
        return cls(servers, lifetime=lifetime, ipv4=both or "ipv4" in protocols,
                   ipv6=both or "ipv6" in protocols, host_lookup=lookup,
                   rr_filter=reply_filter(cfg, "smtp_dns_reply_filter"),
                   rr_filter_name=f"{program}_dns_reply_filter")

    def _dns(self):
        """dnspython's async resolver on the trio backend, made (and dnspython
        imported) on first use."""
        if self._res is None:
            import dns.asyncbackend
            self._res = dns_resolver(self._nameservers, self._lifetime)
            self._backend = dns.asyncbackend.get_backend("trio")
        return self._res

    def loaded(self) -> Resolver:
        """This resolver with dnspython imported and set up now, not at the
        first lookup (smtpd, when a restriction of its needs DNS)."""
        self._dns()
        return self

    async def records(self, name: str, rdtype: str) -> list:
        """The records of one answer, through the reply filter; raises DnsError."""
        return (await self._answer(name, rdtype))[0]

    async def _answer(self, name: str, rdtype: str) -> tuple[list, str]:
        """The records of an answer, and the name they belong to (after CNAMEs)."""
        import dns.exception
        import dns.resolver
        res = self._dns()
        try:
            answer = await res.resolve(name, rdtype, raise_on_no_answer=False,
                                             search=False, backend=self._backend)
        except dns.resolver.NXDOMAIN:
            raise DnsError(NOTFOUND, name, rdtype) from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoAnswer,
                dns.resolver.YXDOMAIN, dns.exception.DNSException, OSError):
            raise DnsError(RETRY, name, rdtype) from None
        records = list(answer.rrset or ())
        if records and self._rr_filter:
            records = self._filtered(answer.rrset, records, name, rdtype)
        return records, answer.canonical_name.to_text(omit_final_dot=True)

    def _filtered(self, rrset, records: list, name: str, rdtype: str) -> list:
        """smtp_dns_reply_filter (Postfix dns_rr_filter.c): each record as
        ``name. ttl IN type [preference] value`` asked of the tables; IGNORE
        drops it (logged), another action fails the lookup, and an answer
        left empty is a policy failure (the delivery defers, 4.7.0)."""
        kept = []
        owner = rrset.name.to_text()
        for r in records:
            text = f"{owner} {rrset.ttl} IN {rdtype} {r.to_text()}"
            action = None
            for table in self._rr_filter:
                action = table.lookup(text)
                if action is not None:
                    break
            words = (action or "").split()
            if action is None:
                kept.append(r)
            elif words and words[0].upper() == "IGNORE":
                log.info(f"ignoring DNS RR: {text}")
            else:
                log.warning(f'{self._rr_filter_name}: unknown DNS filter action: "{action}"')
                raise DnsError(RETRY, name, rdtype, "Invalid DNS reply filter syntax")
        if not kept:
            raise DnsError(POLICY, name, rdtype, "DNS reply filter drops all results")
        return kept

    async def mx(self, domain: str) -> list[tuple[int, str]]:
        """(preference, exchange) pairs; [] when the domain has no MX records.

        The exchange of a null MX (RFC 7505) comes back as "" (routing.mx_hosts
        turns a lone one into the 5.1.0 bounce)."""
        records = await self.records(domain, "MX")
        return [(int(r.preference), r.exchange.to_text(omit_final_dot=True).rstrip("."))
                for r in records]

    async def ipv4(self, name: str) -> list[str]:
        """The A records of name, whatever inet_protocols says (a DNS list's
        answer is a code, not an address to connect to); [] when none."""
        return [r.address for r in await self.records(name, "A")]

    async def txt(self, name: str) -> list[str]:
        """The TXT records of name, each one's strings joined; [] when none."""
        return [b"".join(r.strings).decode("utf-8", "replace")
                for r in await self.records(name, "TXT")]

    async def addresses(self, host: str) -> list[str]:
        """The host's addresses (IPv4 first, as asked by inet_protocols).

        Raises DnsError when no family gave an address and one failed: the
        first NOTFOUND or RETRY (RETRY wins, the answer may come later)."""
        return (await self.named_addresses(host))[1]

    async def named_addresses(self, host: str) -> tuple[str, list[str]]:
        """addresses(), and the name DNS gave them under: the end of the
        CNAME chain from host (host itself without one, or when the
        addresses came from an address literal or the native lookup).
        smtp_cname_overrides_servername names the server after it."""
        try:
            return host, [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        found: list[str] = []
        name = ""
        errors: list[DnsError] = []
        if self._dns_hosts:
            for rdtype in self._types:
                try:
                    records, owner = await self._answer(host, rdtype)
                except DnsError as e:
                    errors.append(e)
                    continue
                if records and not name:
                    name = owner
                found += [r.address for r in records]
        if not found and self._native_hosts:
            try:
                return host, await self._native(host)
            except DnsError as e:
                errors.append(e)
        if not found and errors:
            raise next((e for e in errors if e.temporary), errors[0])
        return name or host, found

    async def _native(self, host: str) -> list[str]:
        """smtp_host_lookup = native: the system's getaddrinfo() (/etc/hosts, nsswitch)."""
        family = (socket.AF_UNSPEC if len(self._types) == 2 else
                  socket.AF_INET if self._types == ["A"] else socket.AF_INET6)
        try:
            infos = await trio.socket.getaddrinfo(host, None, family, socket.SOCK_STREAM)
        except socket.gaierror as e:
            kind = RETRY if e.errno == socket.EAI_AGAIN else NOTFOUND
            raise DnsError(kind, host, "A") from None
        out: list[str] = []
        for fam, *_, sockaddr in sorted(infos, key=lambda i: i[0] != socket.AF_INET):
            addr = str(sockaddr[0]).split("%")[0]
            if addr not in out:
                out.append(addr)
        return out
