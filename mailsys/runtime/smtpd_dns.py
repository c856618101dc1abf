"""smtpd_dns - the DNS facts smtpd's restrictions ask for, and the client's name.

SYNOPSIS
    dns = SmtpdDns.from_config(cfg)
    status = await dns.domain_status("example.org")    # DnsStatus: MX, A or AAAA exists?
    peer = await peer_name("192.0.2.7")    # PeerName: verified name, PTR name, their statuses
    records = await HostLookups.from_config(cfg).lookup("MX", "example.org")   # HostRecords

DESCRIPTION
    domain_status() answers reject_unknown_sender_domain and
    reject_unknown_recipient_domain the way Postfix's smtpd_check.c does:
    the name exists for mail when it has an MX record or an address record
    (A or AAAA). NXDOMAIN or no such records is NOT_FOUND; a server failure
    or timeout is TEMPFAIL (the restriction then defers with 450 instead of
    rejecting). An MX answer that is RFC 7505's null MX (an exchange
    ".", other records beside it or not, as Postfix's dns_get_answer()
    sees it) is NULL_MX, and ends the lookup there as Postfix's
    DNS_REQ_FLAG_STOP_NULLMX does: the domain's addresses are not asked.
    dnspython's async resolver runs
    on the trio backend, with dns_nameservers (address[:port]) when set,
    else /etc/resolv.conf. Answers are not cached here; the resolver the
    host runs is the cache.

    HostLookups answers permit_mx_backup's and check_*_{mx,ns,a}_access's
    record lookups (NeedRecords): ("MX", domain) gives the (preference,
    host) pairs, ("NS", domain) the name server names, ("ADDR", host) the
    host's A and AAAA addresses (inet_protocols picks the families),
    ("HOSTNAME", name) whether the HELO name exists for
    reject_unknown_helo_hostname (smtpd_check.c reject_unknown_hostname:
    A, AAAA, then MX, the first found deciding; otherwise the best answer
    of the three in Postfix's order OK, reply filter, temporary failure,
    null MX, not found; a null MX is as good as an address for an MTA's
    name, and an answer the filter emptied logs "NAME: address or MX lookup
    error: DNS reply filter drops all results" and counts as found), and
    the DNS lists' ("DNSXL", name) its A records, ("TXT", name) its TXT
    strings (a temporary failure of a DNSXL lookup logs Postfix's "NAME:
    RBL lookup error: ..." warning), each
    as a HostRecords with the NOT_FOUND / TEMPFAIL split above; a null MX
    counts as none. It uses the smtp client's resolver
    (mailsys.runtime.resolver) on the same name servers, which imports
    dnspython only on the first lookup. Postfix finds whether an MX host
    has one of our addresses with getaddrinfo() (so /etc/hosts counts);
    here DNS answers that too, as it does every other permit_mx_backup
    question.

    smtpd_dns_reply_filter (empty by default) is the smtpd side of
    smtp_dns_reply_filter (mailsys.runtime.resolver, Postfix
    dns_rr_filter.c): every record these lookups get is asked of its
    tables as "name. ttl IN type [preference] value"; IGNORE drops it
    ("ignoring DNS RR: ..."), another action logs
    "smtpd_dns_reply_filter: unknown DNS filter action" and fails the
    lookup as a temporary error. A name whose records were all dropped is
    not unknown: domain_status() logs Postfix's "NAME: MX or address
    lookup error: DNS reply filter drops all results" and answers EXISTS,
    so reject_unknown_* do not refuse it; a DNS list whose answer was
    all dropped logs "NAME: RBL lookup error: Error looking up name=NAME
    type=A: DNS reply filter drops all results" and does not list the
    client. The peer name lookup below uses the system resolver, as
    Postfix's does, and no filter.

    peer_name() is Postfix's peer name lookup (smtpd_peer.c): the PTR
    name of the address (a malformed or numeric one counts as none) is the
    client's reverse name; it is its name only when it resolves back to
    that same address (forward-confirmed), otherwise the client is
    "unknown", with Postfix's warning "hostname NAME does not resolve to
    address ADDR[: resolver error]". Each of the two names comes with its
    status (mailsys.policy.context NAME_*): temporary when the resolver
    failed for now (EAI_AGAIN, EAI_MEMORY, EAI_SYSTEM, or the deadline),
    so that reject_unknown_client_hostname and
    reject_unknown_reverse_client_hostname answer 450 instead of
    unknown_client_reject_code. Both lookups go through the system
    resolver (getnameinfo / getaddrinfo, in trio's worker threads, so
    /etc/hosts counts as Postfix's does) under one short deadline. The two
    lookups and their thread hand-offs cost about 0.3 ms of CPU per
    connection, more than the rest of a short SMTP session's commands
    together, so a confirmed name is remembered for PEER_NAME_TTL seconds
    per address (PeerNames; at most PEER_NAME_MAX addresses, the oldest
    forgotten first). A name that is not confirmed is never remembered:
    it may come from a temporary failure, and a client whose DNS is fixed
    is seen at once.
"""

from __future__ import annotations

import ipaddress
import socket

import structlog
import trio

from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.policy.context import NAME_FORGED, NAME_OK, NAME_PERM, NAME_TEMP
from mailsys.policy.hostnames import valid_hostaddr, valid_hostname
from mailsys.policy.restrictions import DnsStatus, HostRecords
from mailsys.runtime.resolver import (NOTFOUND, POLICY, RETRY, DnsError, Resolver,
                                      parse_nameserver, reply_filter)

log = structlog.get_logger()

FILTER = "smtpd_dns_reply_filter"

# dnspython (~3 MB per process) is imported by from_config(), which smtpd
# calls only when a restriction needs DNS; client_name() uses the system
# resolver and needs none of it.

# A lookup for a restriction runs while the client waits for its RCPT reply.
LOOKUP_TIMEOUT = 10.0
# The peer name lookup delays the greeting; Postfix leaves it to the resolver's
# own timeouts, which can be half a minute. A client whose PTR is that slow is
# served as "unknown" instead.
PEER_NAME_TIMEOUT = 5.0

_ADDRESS_TYPES = ("MX", "A", "AAAA")

# Postfix dns.h: which of several answers for one name counts, best first.
_PRECEDENCE = (POLICY, RETRY, "nullmx", NOTFOUND)

# How long a forward-confirmed peer name is used without asking again, and
# for how many client addresses at most.
PEER_NAME_TTL = 30.0
PEER_NAME_MAX = 4096


class PeerNames:
    """Forward-confirmed peer names by address, each for ttl seconds."""

    __slots__ = ("ttl", "limit", "_names")

    def __init__(self, ttl: float = PEER_NAME_TTL, limit: int = PEER_NAME_MAX) -> None:
        self.ttl, self.limit = ttl, limit
        self._names: dict[str, tuple[float, str]] = {}     # addr -> (expires, name)

    def get(self, addr: str, now: float) -> str | None:
        entry = self._names.get(addr)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._names[addr]
            return None
        return entry[1]

    def put(self, addr: str, name: str, now: float) -> None:
        names = self._names
        names.pop(addr, None)
        if len(names) >= self.limit:
            del names[next(iter(names))]          # the oldest entry
        names[addr] = (now + self.ttl, name)


_peer_names = PeerNames()


def _servers(cfg) -> list[tuple[str, int]]:
    try:
        return [parse_nameserver(s) for s in cfg.dns_nameservers]
    except ValueError as e:
        raise ConfigError(f"dns_nameservers: {e}", param="dns_nameservers") from None


@frozen
class SmtpdDns:
    resolver: Resolver
    timeout: float = LOOKUP_TIMEOUT

    @classmethod
    def from_config(cls, cfg) -> "SmtpdDns":
        # Made at start-up (smtpd calls this only when a restriction needs
        # DNS), so that the first client does not wait for the import.
        return cls(Resolver(_servers(cfg), lifetime=LOOKUP_TIMEOUT,
                            rr_filter=reply_filter(cfg, FILTER), rr_filter_name=FILTER).loaded())

    async def domain_status(self, name: str) -> DnsStatus:
        """EXISTS when name has an MX, A or AAAA record; see the module description."""
        outcome, dropped = DnsStatus.NOT_FOUND, False
        for rdtype in _ADDRESS_TYPES:
            try:
                if rdtype == "MX":
                    # A null MX's exchange comes back as "".
                    mx = await self.resolver.mx(name)
                    if any(not host for _, host in mx):
                        return DnsStatus.NULL_MX
                    if mx:
                        return DnsStatus.EXISTS
                elif await self.resolver.records(name, rdtype):
                    return DnsStatus.EXISTS
            except DnsError as e:
                if e.kind == NOTFOUND:
                    return DnsStatus.NOT_FOUND      # NXDOMAIN: no type will exist
                if e.kind != POLICY:
                    outcome = DnsStatus.TEMPFAIL
                    continue
                dropped = True
                if rdtype == "MX":
                    break                           # dns_lookup_l: STOP_MX_POLICY
        if dropped:
            # smtpd_check.c reject_unknown_mailhost(): a policy result
            # outranks a failure and is not refused.
            log.warning(f"{name}: MX or address lookup error: DNS reply filter drops all results")
            return DnsStatus.EXISTS
        return outcome


@frozen
class HostLookups:
    """permit_mx_backup's MX and address lookups (see the module description)."""
    resolver: Resolver

    @classmethod
    def from_config(cls, cfg) -> "HostLookups":
        protocols = set(cfg.inet_protocols)
        both = "all" in protocols
        return cls(Resolver(_servers(cfg), lifetime=LOOKUP_TIMEOUT,
                            ipv4=both or "ipv4" in protocols, ipv6=both or "ipv6" in protocols,
                            rr_filter=reply_filter(cfg, FILTER), rr_filter_name=FILTER))

    async def lookup(self, kind: str, name: str) -> HostRecords:
        if kind == "HOSTNAME":
            return await self._hostname(name)
        try:
            if kind == "MX":
                # A null MX's exchange comes back as "".
                mx = await self.resolver.mx(name)
                found = tuple((p, host) for p, host in mx if host)
                if len(found) < len(mx):
                    return HostRecords(DnsStatus.NOT_FOUND, no_data=True, null_mx=True)
            elif kind == "NS":
                found = tuple(r.target.to_text(omit_final_dot=True)
                              for r in await self.resolver.records(name, "NS"))
            elif kind == "DNSXL":
                found = tuple(await self.resolver.ipv4(name))
            elif kind == "TXT":
                found = tuple(await self.resolver.txt(name))
            else:
                found = tuple(await self.resolver.addresses(name))
        except DnsError as e:
            if kind == "DNSXL" and e.temporary:
                # Postfix's smtpd_check.c rbl_pagein() and dns_lookup() words.
                log.warning(f"{name}: RBL lookup error: {e.reason}")
            return HostRecords(DnsStatus.TEMPFAIL if e.temporary else DnsStatus.NOT_FOUND,
                               filtered=e.kind == POLICY)
        if not found:
            return HostRecords(DnsStatus.NOT_FOUND, no_data=True)
        return HostRecords(DnsStatus.EXISTS, found)

    async def _hostname(self, name: str) -> HostRecords:
        """("HOSTNAME", name); see the module description."""
        best = len(_PRECEDENCE) - 1
        for rdtype in ("A", "AAAA", "MX"):
            try:
                if rdtype == "MX":
                    found = await self.resolver.mx(name)
                    if found and not any(host for _, host in found):
                        best = min(best, _PRECEDENCE.index("nullmx"))
                        continue
                else:
                    found = await self.resolver.records(name, rdtype)
            except DnsError as e:
                kind = e.kind if e.kind in (NOTFOUND, POLICY) else RETRY
                best = min(best, _PRECEDENCE.index(kind))
                continue
            if found:
                return HostRecords(DnsStatus.EXISTS)
        outcome = _PRECEDENCE[best]
        if outcome == POLICY:
            log.warning(f"{name}: address or MX lookup error: DNS reply filter drops all results")
            return HostRecords(DnsStatus.EXISTS, filtered=True)
        if outcome == "nullmx":
            return HostRecords(DnsStatus.EXISTS, null_mx=True)
        return HostRecords(DnsStatus.TEMPFAIL if outcome == RETRY else DnsStatus.NOT_FOUND)


@frozen
class PeerName:
    """The client's names as smtpd_peer.c finds them: name is the
    forward-confirmed one or "unknown", reverse_name the PTR name or
    "unknown"; each with its status (mailsys.policy.context NAME_*)."""

    name: str = "unknown"
    reverse_name: str = "unknown"
    name_status: str = NAME_PERM
    reverse_status: str = NAME_PERM


# smtpd_peer.c TEMP_AI_ERROR(): resolver errors that may go away.
_TEMP_EAI = frozenset({socket.EAI_AGAIN, socket.EAI_MEMORY, getattr(socket, "EAI_SYSTEM", None)})
_NO_PEER_NAME = PeerName()
_TEMP_PEER_NAME = PeerName(name_status=NAME_TEMP, reverse_status=NAME_TEMP)


async def peer_name(addr: str, *, timeout: float = PEER_NAME_TIMEOUT,
                    names: PeerNames = _peer_names) -> PeerName:
    """The names of the client at addr; see the module description."""
    name = names.get(addr, trio.current_time())
    if name is not None:
        return PeerName(name, name, NAME_OK, NAME_OK)
    peer = await _lookup(addr, timeout)
    if peer.name_status == NAME_OK:
        names.put(addr, peer.name, trio.current_time())
    return peer


async def _lookup(addr: str, timeout: float) -> PeerName:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return _NO_PEER_NAME
    ptr = None
    with trio.move_on_after(timeout):
        try:
            ptr, _ = await trio.socket.getnameinfo((addr, 0), socket.NI_NAMEREQD)
        except socket.gaierror as e:
            return _TEMP_PEER_NAME if e.errno in _TEMP_EAI else _NO_PEER_NAME
        except OSError:
            return _TEMP_PEER_NAME
        # sockaddr_to_hostname() takes no malformed or numeric name.
        if not valid_hostname(ptr) or valid_hostaddr(ptr):
            return _NO_PEER_NAME
        try:
            infos = await trio.socket.getaddrinfo(ptr, None, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            log.warning(f"hostname {ptr} does not resolve to address {addr}: {e.strerror}")
            return PeerName("unknown", ptr, NAME_TEMP if e.errno in _TEMP_EAI else NAME_FORGED,
                            NAME_OK)
        for *_, sockaddr in infos:
            try:
                if ipaddress.ip_address(sockaddr[0].split("%")[0]) == ip:
                    return PeerName(ptr, ptr, NAME_OK, NAME_OK)
            except ValueError:
                continue
        log.warning(f"hostname {ptr} does not resolve to address {addr}")
        return PeerName("unknown", ptr, NAME_FORGED, NAME_OK)
    # Out of time: whatever was not answered failed for now.
    if ptr is None:
        return _TEMP_PEER_NAME
    return PeerName("unknown", ptr, NAME_TEMP, NAME_OK)
