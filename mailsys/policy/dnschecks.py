"""dnschecks - the restrictions that ask DNS whether a domain exists.

DESCRIPTION
    reject_unknown_sender_domain, reject_unknown_recipient_domain and
    reject_unknown_helo_hostname refuse a name that has no MX, A or AAAA
    record (450 by default, unknown_address_reject_code and
    unknown_hostname_reject_code); a temporary DNS failure is a 450 by
    unknown_address_tempfail_action (the domains) or
    unknown_helo_hostname_tempfail_action (the HELO name), both
    $reject_tempfail_action by default: defer_if_permit holds the 450 until
    the evaluation ends in a permit (a later reject wins), defer answers it
    at once. Local and virtual domains and address literals are
    not looked up.

    A domain whose MX is a null MX (RFC 7505, "MX 0 .") is refused whatever
    unknown_address_reject_code says: 550 5.7.27 for a sender, 556 5.1.10
    for a recipient, "Domain NAME does not accept mail (nullMX)"
    (smtpd_check.c reject_unknown_mailhost(): the MX lookup comes first and
    a null MX stops it, so its A or AAAA records do not count).

    The DNS list restrictions are in mailsys.policy.dnsxl.

    reject_unknown_helo_hostname asks ("HOSTNAME", name) of run.lookup()
    (NeedRecords): Postfix looks a HELO name up as A, AAAA, then MX, and a
    null MX does not make it unknown (smtpd_check.c
    reject_unknown_hostname(); mailsys.runtime.smtpd_dns answers).

    None of them resolves anything: the domains are asked of run.dns(), the
    injected resolver callback (see context), which also records the names
    for Restrictions.domains_to_resolve(). These functions are steps of a
    compiled Restrictions (rs); only mailsys.policy.restrictions calls them.

SEE ALSO
    Postfix postconf(5), src/smtpd/smtpd_check.c (reject_unknown_address,
    reject_unknown_hostname).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsys.policy.context import DnsStatus
from mailsys.policy.evaluate import judge_helo
from mailsys.policy.replies import HELO, RECIPIENT, SENDER
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
    if status is DnsStatus.NULL_MX:
        # Postfix's fixed codes; _reject's DSN fix makes the class 5.
        code, enhanced = (550, "4.7.27") if reply_class == SENDER else (556, "4.1.10")
        return rs._reject(run, info, code, enhanced,
                          f"<{addr}>: {reply_class} rejected: Domain {r.domain} "
                          "does not accept mail (nullMX)", reply_class)
    enhanced = "4.1.8" if reply_class == SENDER else "4.1.2"
    text = f"<{addr}>: {reply_class} rejected: Domain not found"
    if status is DnsStatus.TEMPFAIL:
        # Postfix's code is 450 here whatever unknown_address_reject_code says.
        return rs._tempfail(run, info, rs.unknown_address_tempfail, 450, enhanced, text,
                            reply_class)
    return rs._reject(run, info, rs._codes["unknown_address_reject_code"], enhanced, text,
                      reply_class)


def reject_unknown_sender_domain(rs: Restrictions, run: Run, info: ListInfo):
    return unknown_domain(rs, run, info, run.ctx.sender, SENDER)


def reject_unknown_recipient_domain(rs: Restrictions, run: Run, info: ListInfo):
    return unknown_domain(rs, run, info, run.ctx.recipient, RECIPIENT)


def reject_unknown_helo(rs: Restrictions, run: Run, info: ListInfo):
    def judge(helo: str, name: str):
        status = run.lookup("HOSTNAME", name.lower()).status
        if status is DnsStatus.EXISTS:
            return DUNNO
        text = f"<{helo}>: Helo command rejected: Host not found"
        if status is DnsStatus.TEMPFAIL:
            return rs._tempfail(run, info, rs.unknown_helo_tempfail, 450, "4.7.1", text, HELO)
        return rs._reject(run, info, rs._codes["unknown_hostname_reject_code"], "4.7.1", text, HELO)
    return judge_helo(rs, run, info, judge)


__all__ = ["reject_unknown_helo", "reject_unknown_recipient_domain",
           "reject_unknown_sender_domain"]
