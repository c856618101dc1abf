"""mxbackup - permit_mx_backup: accept mail for domains this host is a backup MX for.

DESCRIPTION
    permit_mx_backup permits a recipient as Postfix's smtpd_check.c does:

      - a recipient of an authorized destination (local, virtual or
        relay_domains: what permit_auth_destination accepts) is permitted
        outright, for backwards compatibility; one with sender-specified
        routing (user@elsewhere@domain) is not, nor an [address] literal;
      - otherwise the recipient domain's MX hosts are split into the
        primaries (the best preference) and the rest. The recipient is
        permitted when this host is none of the primaries but one of the
        rest, and, when permit_mx_backup_networks is set, every address of
        every primary matches that list (so that only domains whose
        primary MX is in known networks can use this host as backup).

    An MX host is this host when its name is a local domain (mydestination,
    or an [address] literal of ours: Postfix's resolve_local) or one of its
    addresses is one of ours ($inet_interfaces, $proxy_interfaces). Names
    are compared first and addresses looked up only when no name matched.

    Temporary DNS failures never reject: a failed MX lookup, or an MX host
    whose addresses cannot be found, makes a later reject a 450 4.4.4
    deferral (defer_if_reject, with Postfix's texts: "Unable to look up mail
    exchanger information: Host not found, try again", "Unable to look up
    mail exchanger host mx.example: Temporary failure in name resolution",
    "...: Name or service not known", "...: No address associated with
    hostname"), and the restriction does not permit. These replies were
    compared with Postfix 3.7.11's against the same DNS data. A domain without MX records (or with a null MX) is not
    permitted.

    The lookups go through Run.lookup(): the caller supplies them
    (NeedRecords, see needs), so this module does no I/O. All MX hosts of
    one group are asked for in one round, where Postfix stops at the first
    that matches; the outcome is the same.

SEE ALSO
    Postfix postconf(5) permit_mx_backup, permit_mx_backup_networks;
    src/smtpd/smtpd_check.c permit_mx_backup, i_am_mx, has_my_addr,
    permit_mx_primary, all_auth_mx_addr; src/global/resolve_local.c.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailsys.policy.context import DnsStatus
from mailsys.policy.replies import RECIPIENT
from mailsys.policy.resolve import DomainClass
from mailsys.policy.state import DUNNO, OK, ListInfo, Run, Verdict

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions

# Postfix's dns_strerror() and the C library's gai_strerror() texts.
_DNS_TRY_AGAIN = "Host not found, try again"
GAI_AGAIN = "Temporary failure in name resolution"
GAI_NONAME = "Name or service not known"
GAI_NODATA = "No address associated with hostname"


def permit_mx_backup(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    rcpt = run.ctx.recipient
    if rcpt is None:
        return DUNNO
    r = rs.resolve(rcpt)
    if r.routed and not rs._untrusted_routing:
        return DUNNO
    if r.cls.final or r.cls == DomainClass.RELAY:
        return OK
    domain = r.domain
    if not domain or domain.startswith("["):
        return DUNNO
    mx = run.lookup("MX", domain)
    if mx.status is not DnsStatus.EXISTS:
        if mx.status is DnsStatus.TEMPFAIL:
            _defer(rs, run, info, "Unable to look up mail exchanger information: " + _DNS_TRY_AGAIN)
        return DUNNO
    ranked = sorted(mx.records, key=lambda record: record[0])
    best = ranked[0][0]
    primaries = [host for pref, host in ranked if pref == best]
    backups = [host for pref, host in ranked if pref != best]
    if _i_am_mx(rs, run, info, primaries):
        return DUNNO
    if not backups or not _i_am_mx(rs, run, info, backups):
        return DUNNO
    if rs.mx_backup_networks and not _primaries_authorized(rs, run, primaries):
        return DUNNO
    return OK


def _i_am_mx(rs: Restrictions, run: Run, info: ListInfo, hosts: list[str]) -> bool:
    """Postfix i_am_mx: a host named as local, else one with an address of ours."""
    if any(_local_name(rs, host) for host in hosts):
        return True
    for host in hosts:
        found = run.lookup("ADDR", host, *hosts)
        if found.status is not DnsStatus.EXISTS:
            why = (GAI_AGAIN if found.status is DnsStatus.TEMPFAIL else
                   GAI_NODATA if found.no_data else GAI_NONAME)
            _defer(rs, run, info, f"Unable to look up mail exchanger host {host}: {why}")
            continue
        if any(_own(rs, addr) for addr in found.records):
            return True
    return False


def _primaries_authorized(rs: Restrictions, run: Run, hosts: list[str]) -> bool:
    """Postfix permit_mx_primary: every address of every primary in
    permit_mx_backup_networks."""
    for host in hosts:
        found = run.lookup("ADDR", host, *hosts)
        if found.status is not DnsStatus.EXISTS:
            # Postfix looks the host up again here and defers "Unable to
            # look up host H as mail exchanger"; here it is the same answer
            # whose failure _i_am_mx has already made the deferral (the
            # first reason is the one kept), so there is nothing to add.
            return False
        if not all(rs.mx_backup_networks.match(host, addr) for addr in found.records):
            return False
    return True


def _local_name(rs: Restrictions, host: str) -> bool:
    """Postfix resolve_local: one trailing dot is dropped, two make no name."""
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or name.endswith("."):
        return False
    return rs._addresses.is_local_domain(name)


def _own(rs: Restrictions, addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]) in rs.local_addresses
    except ValueError:
        return False


def _defer(rs: Restrictions, run: Run, info: ListInfo, why: str) -> None:
    rs._defer_if_reject(run, info, 450, "4.4.4",
                        f"<{run.ctx.recipient}>: {RECIPIENT} rejected: {why}", RECIPIENT)


__all__ = ["GAI_AGAIN", "GAI_NODATA", "GAI_NONAME", "permit_mx_backup"]
