"""dnsxl - the restrictions that ask DNS lists: reject_rbl_client, reject_rhsbl_*, permit_dnswl_client, permit_rhswl_client.

DESCRIPTION
    Postfix's smtpd_check.c DNSxL lookups. Each restriction names a zone,
    optionally with a reply filter ("zen.spamhaus.org=127.0.0.[2..11]",
    mailsys.policy.dnsxl_filter). What is looked up:

      reject_rbl_client, permit_dnswl_client
                the client address, reversed (IPv6: its 32 nibbles), then the zone
      reject_rhsbl_client, permit_rhswl_client          the client's name
      reject_rhsbl_reverse_client                       the same name here
      reject_rhsbl_helo      the HELO name (the domain after "@", if any)
      reject_rhsbl_sender, reject_rhsbl_recipient       the address's domain

    A name that is empty, an address literal, not a valid hostname, or
    ends in a numeric label is not looked up (some lists answer "No IP
    queries" for those). The name is listed when it has an A record that
    passes the filter (any A record without one).

    A listed name is refused with the reply default_rbl_reply makes, or the
    template rbl_reply_maps gives for the restriction's zone (as written,
    filter included); its macros are $rbl_code (maps_rbl_reject_code),
    $rbl_domain (the zone), $rbl_what (the address or name looked up, a
    sender or recipient as the whole address), $rbl_class ("Client host",
    "Helo command", "Sender address", "Recipient address"), $rbl_reason
    (and $rbl_txt: the zone's TXT records for the name, " / " between
    them, at most 500 characters) and the smtpd ones below. The result must
    start with a 4xx or 5xx code and a space; otherwise it is logged
    ("rbl response code configuration error: TEXT") and the reply is 450
    4.7.1 Service unavailable. Its default DSN code is 4.7.1, made 5.7.1
    for a 5xx reply.

    A lookup that fails temporarily never rejects (the runtime logs
    Postfix's "RBL lookup error" warning); for permit_dnswl_client and
    permit_rhswl_client it becomes defer_if_reject "450 4.7.1 <name>:
    Client host rejected: Service unavailable". Those two permit only
    when, at RCPT, the recipient is one permit_auth_destination accepts:
    an allow list never opens a relay.

    No I/O here: the A and TXT records come through Run.lookup() ("DNSXL"
    and "TXT" kinds, NeedRecords), which the caller resolves.

SEE ALSO
    Postfix postconf(5) (reject_rbl_client, default_rbl_reply,
    rbl_reply_maps), src/smtpd/smtpd_check.c.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mailsys.config.maincf import Expander
from mailsys.errors import ConfigError
from mailsys.frozen import frozen
from mailsys.policy.context import DnsStatus
from mailsys.policy.decision import Note
from mailsys.policy.dnsxl_filter import ReplyFilter
from mailsys.policy.evaluate import auth_destination
from mailsys.policy.hostnames import valid_hostname
from mailsys.policy.netmatch import parse_address
from mailsys.policy.replies import CLIENT, HELO, RECIPIENT, SENDER, split_dsn
from mailsys.policy.resolve import split_address
from mailsys.policy.state import DUNNO, OK, ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions

__all__ = ["DEFAULT_RBL_REPLY", "Zone", "dnsbl", "dnswl", "rbl_reply"]

DEFAULT_RBL_REPLY = ("$rbl_code Service unavailable; $rbl_class [$rbl_what] blocked using "
                     "$rbl_domain${rbl_reason?; $rbl_reason}")
# Postfix RBL_TXT_LIMIT: the TXT records given as the reason, at most.
TXT_LIMIT = 500


@frozen
class Zone:
    """A restriction's argument: "zone[=filter]"."""
    text: str                            # as written: the rbl_reply_maps key
    domain: str
    filter: ReplyFilter | None

    @classmethod
    def parse(cls, text: str) -> "Zone":
        domain, _, pattern = text.partition("=")
        return cls(text, domain.lower().rstrip("."),
                   ReplyFilter.parse(pattern) if pattern else None)


def _target(name: str, run: Run) -> tuple[str, str, str] | None:
    """(query name, what, reply class) for restriction name, or None when
    there is nothing to look up."""
    ctx = run.ctx
    if name in ("reject_rbl_client", "permit_dnswl_client"):
        ip = parse_address(ctx.client_addr)
        if ip is None:
            return None
        return ip.reverse_pointer.rsplit(".", 2)[0], str(ip), CLIENT
    if name in ("reject_rhsbl_client", "reject_rhsbl_reverse_client", "permit_rhswl_client"):
        what, reply_class = (ctx.client_name if ctx.client_name != "unknown" else ""), CLIENT
    elif name == "reject_rhsbl_helo":
        what, reply_class = ctx.helo or "", HELO
    elif name == "reject_rhsbl_sender":
        what, reply_class = ctx.sender or "", SENDER
    else:
        what, reply_class = ctx.recipient or "", RECIPIENT
    domain = split_address(what)[1] if "@" in what else what
    domain = domain.lower().rstrip(".")
    if not domain or domain.startswith("[") or domain.rsplit(".", 1)[-1].isdigit() \
            or not valid_hostname(domain):
        return None
    return domain, what, reply_class


def _listed(run: Run, query: str, zone: Zone) -> DnsStatus:
    found = run.lookup("DNSXL", query)
    if found.status is not DnsStatus.EXISTS:
        return found.status
    if zone.filter is not None and not any(zone.filter.matches(a) for a in found.records):
        return DnsStatus.NOT_FOUND
    return DnsStatus.EXISTS


def dnsbl(rs: Restrictions, run: Run, info: ListInfo, name: str, zone: Zone):
    """reject_rbl_client and reject_rhsbl_*: refused when listed."""
    target = _target(name, run)
    if target is None:
        return DUNNO
    query, what, reply_class = target
    query = f"{query}.{zone.domain}"
    if _listed(run, query, zone) is not DnsStatus.EXISTS:
        return DUNNO
    txt = run.lookup("TXT", query)
    reason = " / ".join(txt.records)[:TXT_LIMIT] if txt.status is DnsStatus.EXISTS else ""
    values = {"rbl_code": str(rs._codes["maps_rbl_reject_code"]), "rbl_domain": zone.domain,
              "rbl_reason": reason, "rbl_txt": reason, "rbl_what": what,
              "rbl_class": reply_class}
    template = rs.rbl_template(zone.text)
    reply = rbl_reply(template, values, _smtpd_macros(run))
    if reply is None and template != rs.default_rbl_reply:
        run.notes.append(Note("warning", f"rbl_reject_reply: bad rbl reply template for "
                                         f"domain {zone.text}: {template}"))
        reply = rbl_reply(rs.default_rbl_reply, values, _smtpd_macros(run))
    if reply is None or isinstance(reply, str):
        run.notes.append(Note("warning",
                              f"rbl response code configuration error: {reply or template}"))
        return rs._reject(run, info, 450, "4.7.1", "Service unavailable", reply_class)
    code, enhanced, text = reply
    return rs._reject(run, info, code, enhanced, text, reply_class)


def dnswl(rs: Restrictions, run: Run, info: ListInfo, name: str, zone: Zone):
    """permit_dnswl_client and permit_rhswl_client: permitted when listed."""
    if run.ctx.recipient is not None and not auth_destination(rs, run):
        return DUNNO            # never a way around relay control
    target = _target(name, run)
    if target is None:
        return DUNNO
    query, what, reply_class = target
    status = _listed(run, f"{query}.{zone.domain}", zone)
    if status is DnsStatus.TEMPFAIL:
        rs._defer_if_reject(run, info, 450, "4.7.1",
                            f"<{what}>: {reply_class} rejected: Service unavailable", reply_class)
        return DUNNO
    return OK if status is DnsStatus.EXISTS else DUNNO


def rbl_reply(template: str, values: Mapping[str, str],
              more: Callable[[str], str | None]) -> tuple[int, str, str] | str | None:
    """The reply a template makes: (code, enhanced, text); the expanded text
    when it does not start with a 4xx or 5xx code and a space; None when
    the template itself is bad. values first, then more(name)."""
    def lookup(name: str) -> str | None:
        value = values.get(name)
        if value is None:
            value = more(name)
        # Taken as text: a "$" in a TXT record is not a macro.
        return None if value is None else value.replace("$", "$$")
    try:
        text = Expander(lookup, None).expand(template)
    except ConfigError:
        return None
    if len(text) < 4 or text[0] not in "45" or not text[1:3].isdigit() or text[3] != " ":
        return text
    enhanced, rest = split_dsn(text[4:], "4.7.1")
    return int(text[:3]), enhanced, rest or "Service unavailable"


def _smtpd_macros(run: Run) -> Callable[[str], str | None]:
    """The smtpd macros Postfix's smtpd_expand_lookup() knows, for templates."""
    ctx = run.ctx

    def address(prefix: str, addr: str | None) -> dict[str, str]:
        if addr is None:
            return {}
        local, domain = split_address(addr)
        return {prefix: addr, f"{prefix}_name": local, f"{prefix}_domain": domain}
    table = {"client_address": ctx.client_addr, "client_name": ctx.client_name,
             "helo_name": ctx.helo or "", **address("sender", ctx.sender),
             **address("recipient", ctx.recipient)}
    return table.get
