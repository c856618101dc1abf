"""dnschecks - the restrictions that ask DNS: unknown domains and DNS lists.

DESCRIPTION
    reject_unknown_sender_domain, reject_unknown_recipient_domain and
    reject_unknown_helo_hostname refuse a name that has no MX, A or AAAA
    record (450 by default, unknown_address_reject_code and
    unknown_hostname_reject_code); a temporary DNS failure becomes
    defer_if_permit, as unknown_address_tempfail_action = defer_if_permit
    does in Postfix. Local and virtual domains and address literals are
    not looked up.

    reject_rbl_client and reject_rhsbl_client, _reverse_client, _helo,
    _sender and _recipient refuse a client whose reversed address, or a
    name whose domain, is listed in the given zone: "554 5.7.1 Service
    unavailable; Client host [192.0.2.1] blocked using zen.example". A
    "=127.0.0.2"-style reply filter cannot be checked with a resolver that
    only reports existence, so Restrictions skips such an entry with a
    compile-time warning. A lookup that fails temporarily does not reject.

    None of them resolves anything: each asks run.dns(), the injected
    resolver callback (see context), which also records the names for
    Restrictions.domains_to_resolve(). These functions are steps of a
    compiled Restrictions (rs); only mailsys.policy.restrictions calls them.

SEE ALSO
    Postfix postconf(5), src/smtpd/smtpd_check.c (reject_unknown_address,
    reject_unknown_hostname, reject_rbl_addr, reject_rbl_domain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsys.policy.context import DnsStatus
from mailsys.policy.evaluate import judge_helo
from mailsys.policy.hostnames import valid_hostname
from mailsys.policy.netmatch import parse_address
from mailsys.policy.replies import CLIENT, HELO, RECIPIENT, SENDER
from mailsys.policy.resolve import split_address
from mailsys.policy.state import DUNNO, ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions


def unknown_domain(rs: Restrictions, run: Run, info: ListInfo, addr: str | None, reply_class: str):
    """reject_unknown_{sender,recipient}_domain (smtpd_check.c reject_unknown_address)."""
    if not addr:
        return DUNNO
    r = rs.resolve(addr)
    if r.cls.final or not r.domain or r.domain.startswith("["):
        return DUNNO
    status = run.dns(r.domain)
    if status is DnsStatus.EXISTS:
        return DUNNO
    enhanced = "4.1.8" if reply_class == SENDER else "4.1.2"
    text = f"<{addr}>: {reply_class} rejected: Domain not found"
    if status is DnsStatus.TEMPFAIL:
        # unknown_address_tempfail_action = defer_if_permit
        return rs._defer_if_permit(run, info, 450, enhanced, text, reply_class)
    return rs._reject(run, info, rs._codes["unknown_address_reject_code"], enhanced, text,
                      reply_class)


def reject_unknown_sender_domain(rs: Restrictions, run: Run, info: ListInfo):
    return unknown_domain(rs, run, info, run.ctx.sender, SENDER)


def reject_unknown_recipient_domain(rs: Restrictions, run: Run, info: ListInfo):
    return unknown_domain(rs, run, info, run.ctx.recipient, RECIPIENT)


def reject_unknown_helo(rs: Restrictions, run: Run, info: ListInfo):
    def judge(helo: str, name: str):
        status = run.dns(name.lower())
        if status is DnsStatus.EXISTS:
            return DUNNO
        text = f"<{helo}>: Helo command rejected: Host not found"
        if status is DnsStatus.TEMPFAIL:
            return rs._defer_if_permit(run, info, 450, "4.7.1", text, HELO)
        return rs._reject(run, info, rs._codes["unknown_hostname_reject_code"], "4.7.1", text, HELO)
    return judge_helo(rs, run, info, judge)


def dnsbl(rs: Restrictions, run: Run, info: ListInfo, name: str, zone: str):
    """reject_rbl_client and reject_rhsbl_*: listed when <query>.<zone> exists.

    Reply as Postfix's default_rbl_reply without a TXT reason:
    '554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.example'.
    A lookup that fails temporarily does not reject (Postfix likewise).
    """
    ctx = run.ctx
    if name == "reject_rbl_client":
        ip = parse_address(ctx.client_addr)
        if ip is None:
            return DUNNO
        query = ip.reverse_pointer.rsplit(".", 2)[0]     # drop in-addr.arpa / ip6.arpa
        what, reply_class = str(ip), CLIENT
    else:
        kind = name[len("reject_rhsbl_"):]
        if kind in ("client", "reverse_client"):
            domain = ctx.client_name if ctx.client_name != "unknown" else ""
            reply_class = CLIENT
        elif kind == "helo":
            domain, reply_class = ctx.helo or "", HELO
        else:
            addr = ctx.sender if kind == "sender" else ctx.recipient
            domain = split_address(addr or "")[1]
            reply_class = SENDER if kind == "sender" else RECIPIENT
        domain = domain.lower().rstrip(".")
        # Postfix skips names ending in a numerical label: some lists
        # answer "No IP queries" for them.
        if not domain or domain.startswith("[") or domain.rsplit(".", 1)[-1].isdigit() \
                or not valid_hostname(domain):
            return DUNNO
        query = what = domain
    if run.dns(f"{query}.{zone}") is not DnsStatus.EXISTS:
        return DUNNO
    return rs._reject(run, info, rs._codes["maps_rbl_reject_code"], "5.7.1",
                      f"Service unavailable; {reply_class} [{what}] blocked using {zone}",
                      reply_class)


__all__ = ["dnsbl", "reject_unknown_helo", "reject_unknown_recipient_domain",
           "reject_unknown_sender_domain"]
