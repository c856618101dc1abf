"""evaluate - the restrictions that judge the session's own facts.

DESCRIPTION
    One function per Postfix restriction that needs neither DNS nor a user
    table: permit, reject, defer, defer_if_permit, defer_if_reject,
    permit_mynetworks, permit_sasl_authenticated, permit_auth_destination,
    reject_unauth_destination, defer_unauth_destination,
    reject_non_fqdn_sender, reject_non_fqdn_recipient,
    reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname,
    reject_plaintext_session, reject_unknown_client_hostname and
    reject_unknown_reverse_client_hostname, and sleep. Each is a Step of a compiled
    Restrictions (rs): it answers OK, DUNNO, or a reject built by
    rs._reject with Postfix's reply code parameter and text.

    Relay control: permit_auth_destination accepts, and
    reject_unauth_destination / defer_unauth_destination refuse
    ("554 5.7.1 <r>: Relay access denied", or 454 4.7.1 for the defer
    form), a recipient whose resolved domain is not local, virtual or in
    relay_domains, or whose local part still routes onwards. The two
    client hostname checks go by client_name "unknown": smtpd has already
    done the DNS work.

    "sleep seconds" pauses, then goes on with the next restriction (an
    anti-pipelining measure: "sleep 1, reject_unauth_pipelining"). The
    package cannot wait, so the step raises NeedPause (see needs) and the
    caller waits and evaluates again, the pause then counted as made.

SEE ALSO
    Postfix SMTPD_ACCESS_README, postconf(5), src/smtpd/smtpd_check.c.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailsys.policy.context import NAME_OK, NAME_TEMP
from mailsys.policy.hostnames import truncate_dot, valid_hostaddr, valid_hostname
from mailsys.policy.replies import CLIENT, DATA, EOD, HELO, RECIPIENT, SENDER
from mailsys.policy.resolve import DomainClass, split_address
from mailsys.policy.state import DUNNO, OK, ListInfo, Run, Verdict

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions


def permit(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    return OK


def reject_all(rs: Restrictions, run: Run, info: ListInfo):
    return rs._reject(run, info, rs._codes["reject_code"], "5.7.1",
                      f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: Access denied")


def reject_unauth_pipelining(rs: Restrictions, run: Run, info: ListInfo):
    """Postfix: a client that sent commands ahead of time where not allowed."""
    if not run.ctx.ill_pipelining:
        return DUNNO
    return rs._reject(run, info, 503, "5.5.0",
                      f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: "
                      "Improper use of SMTP command pipelining")


def reject_multi_recipient_bounce(rs: Restrictions, run: Run, info: ListInfo):
    """Postfix: a null sender with more than one recipient (at RCPT, a second
    one; at DATA or after the content, more than one in all)."""
    ctx = run.ctx
    limit = 1 if info.reply_class in (DATA, EOD) else 0
    if ctx.sender != "" or ctx.rcpt_count <= limit:
        return DUNNO
    return rs._reject(run, info, rs._codes["multi_recipient_bounce_reject_code"], "5.5.3",
                      f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: "
                      "Multi-recipient bounce")


def sleep_step(rs: Restrictions, run: Run, info: ListInfo, seconds: int) -> Verdict:
    run.pause(seconds)
    return DUNNO


def defer_all(rs: Restrictions, run: Run, info: ListInfo):
    return rs._reject(run, info, rs._codes["defer_code"], "4.3.2",
                      f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: Try again later")


def defer_if_permit_step(rs: Restrictions, run: Run, info: ListInfo):
    return rs._defer_if_permit(run, info, 450, "4.7.0",
                               f"<{run.reply_name(info.reply_class)}>: {info.reply_class} "
                               "rejected: defer_if_permit requested")


def defer_if_reject_step(rs: Restrictions, run: Run, info: ListInfo):
    rs._defer_if_reject(run, info, 450, "4.7.0",
                        f"<{run.reply_name(info.reply_class)}>: {info.reply_class} rejected: "
                        "defer_if_reject requested")
    return DUNNO


def permit_mynetworks(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    return OK if rs.mynetworks.match(run.ctx.client_name, run.ctx.client_addr) else DUNNO


def permit_inet_interfaces(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    """Postfix: the client connects from one of this host's own addresses
    ($inet_interfaces, $proxy_interfaces; "all" counts the loopback ones)."""
    try:
        addr = ipaddress.ip_address(run.ctx.client_addr.split("%", 1)[0])
    except ValueError:
        return DUNNO
    return OK if addr in rs.local_addresses else DUNNO


def permit_sasl(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    return OK if run.ctx.sasl_user else DUNNO


def permit_tls_clientcerts(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    """The client certificate's fingerprint or its public key's is in
    $relay_clientcerts (the CA need not be trusted: smtpd_check.c)."""
    for fingerprint in run.ctx.ccert_fingerprints:
        if any(table.lookup(fingerprint) is not None for table in rs._relay_clientcerts):
            return OK
    return DUNNO


def permit_tls_all_clientcerts(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    """Any client certificate whose chain a trusted CA signed."""
    return OK if run.ctx.ccert_trusted else DUNNO


def auth_destination(rs: Restrictions, run: Run) -> bool:
    """permit_auth_destination: the recipient is ours to accept."""
    rcpt = run.ctx.recipient
    if rcpt is None:
        return False
    r = rs.resolve(rcpt)
    if r.routed and not rs._untrusted_routing and r.cls != DomainClass.LOCAL:
        return False
    return r.cls.final or r.cls == DomainClass.RELAY


def permit_auth_destination(rs: Restrictions, run: Run, info: ListInfo) -> Verdict:
    return OK if auth_destination(rs, run) else DUNNO


def unauth_destination(rs: Restrictions, run: Run, info: ListInfo, code: int, enhanced: str):
    rcpt = run.ctx.recipient
    if rcpt is None or auth_destination(rs, run):
        return DUNNO
    return rs._reject(run, info, code, enhanced, f"<{rcpt}>: Relay access denied", RECIPIENT)


def reject_unauth_destination(rs: Restrictions, run: Run, info: ListInfo):
    return unauth_destination(rs, run, info, rs._codes["relay_domains_reject_code"], "5.7.1")


def defer_unauth_destination(rs: Restrictions, run: Run, info: ListInfo):
    # smtpd_check.c: the relay reject code turned temporary (554 -> 454).
    return unauth_destination(rs, run, info, rs._relay_code - 100, "4.7.1")


def non_fqdn_address(rs: Restrictions, run: Run, info: ListInfo, addr: str | None, reply_class: str):
    if not addr:
        return DUNNO
    _, domain = split_address(addr)
    domain = domain.rstrip(".")
    if domain.startswith("[") and domain.endswith("]"):
        return DUNNO
    if domain and valid_hostname(domain) and "." in domain:
        return DUNNO
    return rs._reject(run, info, rs._codes["non_fqdn_reject_code"], "5.5.2",
                      f"<{addr}>: {reply_class} rejected: need fully-qualified address",
                      reply_class)


def reject_non_fqdn_sender(rs: Restrictions, run: Run, info: ListInfo):
    return non_fqdn_address(rs, run, info, run.ctx.sender, SENDER)


def reject_non_fqdn_recipient(rs: Restrictions, run: Run, info: ListInfo):
    return non_fqdn_address(rs, run, info, run.ctx.recipient, RECIPIENT)


def helo_literal(rs: Restrictions, run: Run, info: ListInfo, helo: str):
    """reject_invalid_hostaddr: a HELO [literal] must hold a valid address."""
    if valid_hostaddr(helo):
        return DUNNO
    return rs._reject(run, info, rs._codes["invalid_hostname_reject_code"], "5.5.2",
                      f"<{helo}>: Helo command rejected: invalid ip address", HELO)


def judge_helo(rs: Restrictions, run: Run, info: ListInfo, judge):
    """The shared start of every HELO check: nothing to judge without a
    HELO, a [literal] gets the address check, and judge(helo, name) decides
    the rest, name being the HELO without a trailing dot."""
    helo = run.ctx.helo
    if helo is None:
        return DUNNO
    if helo.startswith("["):
        return helo_literal(rs, run, info, helo)
    return judge(helo, truncate_dot(helo))


def reject_invalid_helo(rs: Restrictions, run: Run, info: ListInfo):
    def judge(helo: str, name: str):
        # A bare address is tolerated for backwards compatibility (smtpd_check.c).
        if valid_hostname(name) or valid_hostaddr(name):
            return DUNNO
        return rs._reject(run, info, rs._codes["invalid_hostname_reject_code"], "5.5.2",
                          f"<{helo}>: Helo command rejected: Invalid name", HELO)
    return judge_helo(rs, run, info, judge)


def reject_non_fqdn_helo(rs: Restrictions, run: Run, info: ListInfo):
    def judge(helo: str, name: str):
        if valid_hostname(name) and "." in name:
            return DUNNO
        return rs._reject(run, info, rs._codes["non_fqdn_reject_code"], "5.5.2",
                          f"<{helo}>: Helo command rejected: need fully-qualified hostname", HELO)
    return judge_helo(rs, run, info, judge)


def reject_plaintext_session(rs: Restrictions, run: Run, info: ListInfo):
    if run.ctx.tls:
        return DUNNO
    return rs._reject(run, info, rs._codes["plaintext_reject_code"], "4.7.1",
                      "Session encryption is required", CLIENT)


def unknown_client(rs: Restrictions, run: Run, info: ListInfo, status: str, what: str,
                   enhanced: str):
    """smtpd_check.c reject_unknown_client() and reject_unknown_reverse_name():
    unknown_client_reject_code when the name is unknown for good, 450 when
    its lookup failed for now."""
    if status == NAME_OK:
        return DUNNO
    code = 450 if status == NAME_TEMP else rs._codes["unknown_client_reject_code"]
    return rs._reject(run, info, code, enhanced,
                      f"Client host rejected: cannot find your {what}, [{run.ctx.client_addr}]",
                      CLIENT)


def reject_unknown_client_hostname(rs: Restrictions, run: Run, info: ListInfo):
    # The PTR name must resolve back to the address (forward-confirmed);
    # RFC 7372 "reverse DNS validation failed".
    return unknown_client(rs, run, info, run.ctx.name_status, "hostname", "4.7.25")


def reject_unknown_reverse_client_hostname(rs: Restrictions, run: Run, info: ListInfo):
    # Any PTR name will do.
    return unknown_client(rs, run, info, run.ctx.reverse_status, "reverse hostname", "4.7.1")


__all__ = ["defer_all", "defer_if_permit_step", "defer_if_reject_step", "defer_unauth_destination",
           "helo_literal", "judge_helo", "permit", "permit_auth_destination", "permit_mynetworks", "permit_sasl",
           "reject_all", "reject_invalid_helo", "reject_non_fqdn_helo", "reject_non_fqdn_recipient",
           "reject_non_fqdn_sender", "reject_plaintext_session", "reject_unauth_destination",
           "reject_unknown_client_hostname", "reject_unknown_reverse_client_hostname", "sleep_step"]
