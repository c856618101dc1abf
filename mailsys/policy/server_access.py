"""server_access - check_*_{mx,ns,a}_access: access by a domain's servers.

DESCRIPTION
    check_{client,helo,sender,recipient}_{mx,ns,a}_access and
    check_reverse_client_hostname_{mx,ns,a}_access look up the servers of a
    domain in an access table, as Postfix's smtpd_check.c
    check_server_access() does. The domain is the client's verified name,
    or its PTR name even when that does not resolve back to it
    (reverse_client_hostname; "<name>: Unverified Client host rejected:
    ..."), neither when it is "unknown"; the HELO name; or the part after
    the last "@" of the sender or recipient as the client sent it (nothing
    for the null sender). Its servers are:

      mx    the MX hosts; a domain without MX records (or that does not
            exist) is its own MX host, a null MX (RFC 7505) has none;
      ns    the name servers, of the nearest parent domain that has NS
            records when the domain itself has none;
      a     the domain itself, by its addresses only.

    Each server is looked up by name and parent domains (not for a), then
    by each of its addresses and their parent networks, as
    check_client_access does; the first key found decides, even DUNNO. An
    address literal ([192.0.2.1], [IPv6:...]) is its own MX and A server and
    has no NS server.

    An OK from such a table (or from check_reverse_client_hostname_access,
    forbid_allowlist()) is refused: Postfix logs "restriction NAME
    returns OK for TARGET", "this is not allowed for security reasons",
    "use DUNNO instead of OK if you want to make an exception", and answers
    451 4.3.5 Server configuration error. A failed DNS lookup decides
    nothing; it logs Postfix's warning ("Unable to look up MX host for
    example.com: Host not found, try again", "Unable to look up MX host
    mx.example.com for Sender address a@example.com: Name or service not
    known"). These replies and warnings were compared with Postfix 3.7's
    against the same DNS data.

    The lookups go through Run.lookup() (NeedRecords, see needs): ("MX",
    domain), ("NS", domain) and ("ADDR", host), each asked when the
    evaluation reaches it, so that nothing is asked that Postfix would not.
    The caller's answers have been through smtpd_dns_reply_filter; a
    domain whose records it all dropped logs "DNS reply filter policy".
    Postfix finds a server's addresses with getaddrinfo(); here DNS answers.

SEE ALSO
    Postfix postconf(5) check_sender_mx_access and its siblings;
    src/smtpd/smtpd_check.c check_server_access, forbid_allowlist.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from mailsys.policy.access import access_keys_addr, access_keys_domain, access_result
from mailsys.policy.context import DnsStatus
from mailsys.policy.decision import Note
from mailsys.policy.mxbackup import GAI_AGAIN, GAI_NODATA, GAI_NONAME
from mailsys.policy.netmatch import Table, parent_domains
from mailsys.policy.replies import (CLIENT, CONFIG_ERROR_TEXT, HELO, RECIPIENT, REVERSE_CLIENT,
                                    SENDER)
from mailsys.policy.state import DUNNO, OK, ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions

# check_<who>_<type>_access: the reply class of each who.
CLASSES = {"client": CLIENT, "reverse_client_hostname": REVERSE_CLIENT, "helo": HELO, "sender": SENDER,
           "recipient": RECIPIENT}
TYPES = ("mx", "ns", "a")

# Postfix dns_strerror(): what a failed lookup's warning says.
_DNS_NOT_FOUND = "Host not found"
_DNS_TRY_AGAIN = "Host not found, try again"
_DNS_POLICY = "DNS reply filter policy"


def check_server_access(rs: Restrictions, run: Run, info: ListInfo, name: str, who: str,
                        rtype: str, table: Table, spec: str):
    """check_<who>_<rtype>_access (name) with table (spec)."""
    target = _target(run, who)
    if not target:
        return DUNNO
    result = _servers_access(rs, run, info, target, CLASSES[who], rtype, table, spec)
    return forbid_allowlist(rs, run, info, name, target, result)


def forbid_allowlist(rs: Restrictions, run: Run, info: ListInfo, name: str, target: str, result):
    """smtpd_check.c forbid_allowlist(): restriction name may not answer OK."""
    if result is not OK:
        return result
    for text in (f"restriction {name} returns OK for {target}",
                 "this is not allowed for security reasons",
                 "use DUNNO instead of OK if you want to make an exception"):
        run.notes.append(Note("warning", text))
    return rs._reject(run, info, 451, "4.3.5", CONFIG_ERROR_TEXT)


def _target(run: Run, who: str) -> str:
    ctx = run.ctx
    if who in ("client", "reverse_client_hostname"):
        name = ctx.client_name if who == "client" else ctx.reverse_name
        return "" if name.lower() == "unknown" else name
    if who == "helo":
        return ctx.helo or ""
    return (ctx.sender if who == "sender" else ctx.recipient) or ""


def _servers_access(rs: Restrictions, run: Run, info: ListInfo, target: str, reply_class: str,
                    rtype: str, table: Table, spec: str):
    domain = target.rpartition("@")[2]

    def decide(keys: list[str]):
        for key in keys:
            value = table.lookup(key)
            if value is not None:
                return access_result(rs, run, info, value.strip(), reply_class, spec)
        return None

    if domain.startswith("["):
        # An address literal is its own MX and A host; it has no NS host.
        if rtype == "ns" or not domain.endswith("]"):
            return DUNNO
        addr = _literal_address(domain[1:-1])
        return DUNNO if addr is None else (decide(access_keys_addr(addr)) or DUNNO)
    domain = _ascii(domain)
    if rtype == "a":
        hosts = [domain]
    else:
        hosts = _server_names(run, domain, target, rtype)
    for host in hosts:
        if _bare_address(host):
            result = decide(access_keys_addr(host))
            if result is not None:
                return result
            continue
        if rtype != "a":
            result = decide(access_keys_domain(host.lower(), rs._access_parent))
            if result is not None:
                return result
        found = run.lookup("ADDR", host)
        if found.status is not DnsStatus.EXISTS:
            if rtype != "a":
                why = (GAI_AGAIN if found.status is DnsStatus.TEMPFAIL else
                       GAI_NODATA if found.no_data else GAI_NONAME)
                run.notes.append(Note("warning", f"Unable to look up {rtype.upper()} host {host} "
                                                 f"for {reply_class} {run.reply_name(reply_class)}: "
                                                 f"{why}"))
            continue
        for addr in found.records:
            result = decide(access_keys_addr(addr))
            if result is not None:
                return result
    return DUNNO


def _server_names(run: Run, domain: str, target: str, rtype: str) -> list[str]:
    """The MX or NS host names of domain; [] (with a warning) when DNS failed."""
    kind = rtype.upper()
    found = run.lookup(kind, domain)
    if kind == "MX":
        if found.null_mx:
            return []
        if found.status is DnsStatus.NOT_FOUND:
            return [domain]         # a domain without MX records is its own MX host
    else:
        # No NS records (or no such name): the nearest parent that has
        # some. Postfix names the whole argument when none had any.
        parents = iter(parent_domains(domain))
        while found.status is DnsStatus.NOT_FOUND:
            domain = next(parents, "")
            if not domain:
                domain = target
                break
            found = run.lookup(kind, domain)
    if found.status is DnsStatus.EXISTS:
        return [host for _, host in found.records] if kind == "MX" else list(found.records)
    why = (_DNS_POLICY if found.filtered else
           _DNS_TRY_AGAIN if found.status is DnsStatus.TEMPFAIL else _DNS_NOT_FOUND)
    run.notes.append(Note("warning", f"Unable to look up {kind} host for {domain}: {why}"))
    return []


def _literal_address(text: str) -> str | None:
    """Postfix valid_mailhost_addr(): 1.2.3.4 or IPv6:..., else None."""
    if text[:5].lower() == "ipv6:":
        text = text[5:]
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _bare_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ascii(domain: str) -> str:
    """A non-ASCII domain in its A-label form, as Postfix looks it up."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


__all__ = ["CLASSES", "TYPES", "check_server_access", "forbid_allowlist"]
