"""access - check_*_access: access(5) table lookups and their actions.

DESCRIPTION
    check_access() looks a client, HELO name, sender or recipient up in an
    access table in Postfix's order, and access_result() carries out the
    first value found, even DUNNO:

    - client: the name ("unknown" too) and its parent domains, then the
      address and its parent networks (1.2.3.4, 1.2.3, 1.2, 1).
    - reverse_client_hostname: the same with the client's PTR name even
      when it does not resolve back to the client ("<name>: Unverified
      Client host rejected: ..."); an OK is refused as for
      check_*_mx_access (see server_access).
    - helo: the name and its parent domains.
    - sender, recipient: user+ext@domain, user@domain, the domain and its
      parents, user+ext@, user@; the null sender as
      smtpd_null_access_lookup_key. Addresses are looked up after
      resolution, so an entry for one of our domains never matches
      user%remote@ours, and an OK for a recipient that still routes onwards
      counts as DUNNO.
    - ccert: the client certificate's fingerprint, then its public key's
      (even from a CA not trusted); the reply names the certificate's CN,
      "<cn>: Client certificate rejected: ...". Nothing without one.
    - sasl: the SASL login name as it is, only for an authenticated
      client ("<name>: SASL login name rejected: ...").

    Parent domains are looked up as "example.com" when
    parent_domain_matches_subdomains names smtpd_access_maps, else as
    ".example.com".

    The actions are those of access(5): OK, RELAY (and an all-numerical
    value), REJECT, DEFER, 4xx/5xx text, DUNNO, DEFER_IF_PERMIT,
    DEFER_IF_REJECT, WARN, INFO, HOLD, DISCARD, FILTER, REDIRECT, BCC and
    PREPEND (returned as Notes for smtpd to log and carry out), or a
    restriction list such as "permit_mynetworks, reject" or a
    smtpd_restriction_classes name, compiled on first use. A value naming a
    lookup table, or an unknown restriction, answers 451 4.3.5 Server
    configuration error, as Postfix does.

    These functions are steps of a compiled Restrictions (rs) and read its
    compiled state; only mailsys.policy.restrictions calls them.

SEE ALSO
    Postfix access(5), src/smtpd/smtpd_check.c (check_table_result,
    check_namadr_access, check_mail_access, check_ccert_access,
    check_sasl_access), src/global/mail_addr_find.c.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailsys.message.address import strip_extension
from mailsys.policy.decision import Decision, Note
from mailsys.policy.hostnames import valid_hostaddr
from mailsys.policy.netmatch import Table, parent_domains, parse_address
from mailsys.policy.permit_log import permit_text
from mailsys.policy.replies import (CCERT, CLIENT, CONFIG_ERROR_TEXT, ETRN, HELO, RECIPIENT,
                                    REVERSE_CLIENT, SASL_USER, SENDER, dsn_fix, split_dsn)
from mailsys.policy.resolve import split_address
from mailsys.policy.state import DUNNO, OK, ListInfo, Run

if TYPE_CHECKING:
    from mailsys.policy.restrictions import Restrictions

_WORD_RE = re.compile(r"(\S*)\s*(.*)", re.S)     # an access action and its text

# The actions cleanup carries out for the whole message (Postfix
# can_delegate_action() and not_in_client_helo()).
_DELEGATED = frozenset({"HOLD", "DISCARD", "FILTER", "REDIRECT", "BCC", "PREPEND"})


def check_access(rs: Restrictions, run: Run, info: ListInfo, kind: str, table: Table,
                 spec: str = ""):
    """check_<kind>_access: the first of kind's lookup keys found in table decides."""
    ctx = run.ctx
    suspicious = False
    if kind in ("client", "reverse_client_hostname"):
        # check_namadr_access: the name (also "unknown") and its parents,
        # then the address and its parent networks.
        name = ctx.client_name or "unknown" if kind == "client" else ctx.reverse_name
        keys = access_keys_domain(name.lower(), rs._access_parent)
        keys.extend(access_keys_addr(ctx.client_addr))
        reply_class = CLIENT if kind == "client" else REVERSE_CLIENT
    elif kind == "helo":
        if ctx.helo is None:
            return DUNNO
        keys = access_keys_domain(ctx.helo.lower(), rs._access_parent)
        reply_class = HELO
    elif kind == "etrn":
        # check_etrn_access: the ETRN domain and its parent domains.
        if not ctx.etrn_domain:
            return DUNNO
        keys = access_keys_domain(ctx.etrn_domain.lower(), rs._access_parent)
        reply_class = ETRN
    elif kind == "ccert":
        keys, reply_class = list(ctx.ccert_fingerprints), CCERT
    elif kind == "sasl":
        keys, reply_class = ([ctx.sasl_user] if ctx.sasl_user else []), SASL_USER
    else:
        addr = ctx.sender if kind == "sender" else ctx.recipient
        if addr is None:
            return DUNNO
        reply_class = SENDER if kind == "sender" else RECIPIENT
        if addr == "":
            keys = [rs._null_key]
        else:
            # check_mail_access looks up the resolved address, so that
            # user%remote@ours is looked up as user@remote, never as ours.
            r = rs.resolve(addr)
            keys = _access_keys_address(r.address, rs._access_parent, rs._delimiter)
            suspicious = (reply_class == RECIPIENT and r.routed
                          and not rs._untrusted_routing)
    for key in keys:
        value = table.lookup(key)
        if value is not None:
            result = access_result(rs, run, info, value.strip(), reply_class, spec)
            if kind == "ccert" and result is DUNNO:
                continue        # smtpd_check.c: the public key's print is tried next
            # The first key found decides, even DUNNO (access(5)).
            # Source-routed recipients are too suspicious for an OK.
            return DUNNO if result is OK and suspicious else result
    return DUNNO


def access_result(rs: Restrictions, run: Run, info: ListInfo, value: str, reply_class: str,
                  spec: str = ""):
    """Postfix check_table_result: one access(5) action (of table spec)."""
    name = run.reply_name(reply_class)
    word, rest = _WORD_RE.match(value).groups()
    rest = rest.strip()
    upper = word.upper()

    if upper in _DELEGATED and not run.delegate:
        run.notes.append(Note("warning", f"access table {spec}: with smtpd_delay_reject=no, "
                                         f"action {upper} is always skipped in Client host or "
                                         f"Helo command restrictions"))
        return DUNNO

    def refused(code: int, default_dsn: str, default_text: str = "Access denied"):
        enhanced, text = split_dsn(rest, default_dsn)
        return code, enhanced, f"<{name}>: {reply_class} rejected: {text or default_text}"

    if upper == "DUNNO":
        return DUNNO
    if upper == "REJECT":
        return rs._reject(run, info, *refused(rs._codes["access_map_reject_code"], "5.7.1"),
                          reply_class)
    if upper == "DEFER":
        return rs._reject(run, info, *refused(rs._codes["access_map_defer_code"], "4.7.1"),
                          reply_class)
    if upper in ("INFO", "WARN"):
        run.notes.append(Note(upper.lower(), rest))
        return DUNNO
    if upper in ("FILTER", "REDIRECT", "BCC"):
        # FILTER needs transport:destination, REDIRECT and BCC an address;
        # Postfix ignores a malformed entry with a warning.
        if rest and (":" in rest if upper == "FILTER" else "@" in rest):
            run.notes.append(Note(upper.lower(), f"<{name}>: {reply_class} triggers {upper} {rest}",
                                  rest))
        return DUNNO
    if upper in ("HOLD", "DISCARD"):
        run.notes.append(Note(upper.lower(),
                              f"<{name}>: {reply_class} {rest or f'triggers {upper} action'}"))
        return OK if upper == "DISCARD" else DUNNO
    if upper == "DEFER_IF_PERMIT":
        return rs._defer_if_permit(
            run, info, *refused(rs._codes["access_map_defer_code"], "4.7.1", "Service unavailable"),
            reply_class)
    if upper == "DEFER_IF_REJECT":
        code, enhanced, text = refused(rs._codes["access_map_defer_code"], "4.7.1",
                                       "Service unavailable")
        if run.defer_if_reject is None:
            run.defer_if_reject = Decision(code, dsn_fix(enhanced, code, reply_class), text,
                                           info.param)
        return DUNNO
    if upper == "PREPEND":
        if re.match(r"^[!-9;-~]+:", rest):
            run.notes.append(Note("prepend", "", rest))
        return DUNNO
    if value.isdigit():
        return OK     # an all-numerical result is OK (pop-before-smtp time stamps)
    if len(word) == 3 and word.isdigit() and word[0] in "45" and rest:
        return rs._reject(run, info, *refused(int(word), f"{word[0]}.7.1"), reply_class)
    if upper in ("OK", "RELAY") or not value:
        if rs._permit_log is not None and rs._permit_log.wants(word or "OK"):
            run.notes.append(Note("permit", permit_text(word or "OK", reply_class, name, spec)))
        return OK
    if ":" in value:
        # Postfix: tables inside access maps are a configuration error;
        # define a restriction class instead.
        rs.warnings.append(f"access table entry with lookup table: {value}")
        return rs._reject(run, info, 451, "4.3.5", CONFIG_ERROR_TEXT)
    # Anything else is a restriction list of its own ("permit_mynetworks, reject").
    steps = rs._value_cache.get(value)
    if steps is None:
        names = [x for x in re.split(r"[,\s]+", value) if x]
        before = len(rs.warnings)
        steps = rs._compile_list(names, info.param)
        if len(rs.warnings) > before:
            # Postfix: an unknown action in an access table is a configuration error.
            steps = (rs._config_error(value),)
        rs._value_cache[value] = steps
    return rs._nested(run, info, steps)


def _access_keys_address(addr: str, parent: bool, delimiter: str) -> list[str]:
    """access(5) lookup order for an e-mail address (mail_addr_find_strategy)."""
    addr = addr.lower()
    local, domain = split_address(addr)
    keys = [addr]
    if delimiter and local:
        base = strip_extension(local, delimiter)
        if base != local:
            keys.append(f"{base}@{domain}" if domain else base)
    if domain:
        keys.extend(access_keys_domain(domain, parent))
    if local:
        keys.append(local + "@")
        if delimiter:
            base = strip_extension(local, delimiter)
            if base != local:
                keys.append(base + "@")
    return keys


def access_keys_domain(domain: str, parent: bool) -> list[str]:
    """check_domain_access: the name, then each parent domain, top-level too;
    "example.com" with parent-domain matching, else ".example.com"."""
    keys = [domain]
    if valid_hostaddr(domain):
        return keys      # no subdomain magic for numerical names
    keys.extend(p if parent else "." + p for p in parent_domains(domain))
    return keys


def access_keys_addr(addr: str) -> list[str]:
    """check_addr_access: the address, then cut at the last '.' (IPv4) or
    ':' (IPv6) again and again: 1.2.3.4 1.2.3 1.2 1 / 2001:db8::5 2001:db8: ..."""
    ip = parse_address(addr)
    text = str(ip) if ip is not None else addr.lower()
    sep = ":" if ":" in text else "."
    keys = []
    while text:
        keys.append(text)
        cut = text.rfind(sep)
        if cut < 0:
            break
        text = text[:cut]
    return keys


__all__ = ["access_keys_addr", "access_keys_domain", "access_result", "check_access"]
