"""permit_log - smtpd_log_access_permit_actions: which permits are logged.

SYNOPSIS
    log = PermitLog.compile(["static:all"], tables)
    log.wants("permit_mynetworks")                      # True
    permit_text("permit_mynetworks", CLIENT, "name[addr]")
        # "action=permit_mynetworks for Client host=name[addr] "

DESCRIPTION
    By default Postfix logs the reject actions of the access restrictions
    and not the permit ones; smtpd_log_access_permit_actions names the
    permit actions to log (Postfix 2.10): action names, "/file/name" (the
    names in that file), "type:table" patterns (an action that is a key;
    static:all is every action) and "!pattern" exclusions, matched left to
    right without regard to case, the first match deciding. Each logged
    permit is a Note("permit", text) that smtpd logs as Postfix's
    "permit: RCPT from ...: action=... for ...; from=<> ..." line (seen live
    with Postfix 3.7.11, including the blank before the ";").

    Which client, sender or recipient an action names follows
    smtpd_check.c: permit_mynetworks and the other client permits name the
    client, permit_auth_destination and permit_mx_backup the recipient, a
    plain "permit" whatever the restriction list is about; an access-table
    OK adds " from type:table" after the name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from mailsys.frozen import frozen
from mailsys.policy.replies import CLIENT, RECIPIENT

__all__ = ["PermitLog", "permit_text", "action_class"]

# Permit actions whose subject is the client, or the recipient.
_CLIENT_PERMITS = frozenset({"permit_mynetworks", "permit_sasl_authenticated",
                             "permit_tls_clientcerts", "permit_tls_all_clientcerts",
                             "permit_inet_interfaces", "permit_dnswl_client",
                             "permit_rhswl_client"})
_RECIPIENT_PERMITS = frozenset({"permit_auth_destination", "permit_mx_backup"})


@frozen
class PermitLog:
    patterns: tuple[str, ...] = ()
    tables: tuple[tuple[str, object], ...] = ()     # (spec, table) of the type:table patterns

    @classmethod
    def compile(cls, items: Iterable[str], opener: Callable[[str], object]) -> PermitLog | None:
        """None for an empty list: nothing is logged, nothing is asked."""
        patterns: list[str] = []
        tables: list[tuple[str, object]] = []
        for item in items:
            bare = item.lstrip("!")
            neg = "!" if item.startswith("!") else ""
            if bare.startswith("/"):
                words = Path(bare).read_text().replace(",", " ").split()
                patterns += [neg + w for w in words if not w.startswith("#")]
            else:
                if ":" in bare:
                    tables.append((bare, opener(bare)))
                patterns.append(item)
        return cls(tuple(patterns), tuple(tables)) if patterns else None

    def wants(self, action: str) -> bool:
        name = action.lower()
        tables = dict(self.tables)
        for pattern in self.patterns:
            negate = pattern.startswith("!")
            word = pattern[1:] if negate else pattern
            if ":" in word:
                hit = tables[word].lookup(name) is not None
            else:
                hit = word.lower() == name
            if hit:
                return not negate
        return False


def action_class(action: str, list_class: str) -> str:
    """What the permit action is about: the client, the recipient, or the list's subject."""
    name = action.lower()
    if name in _CLIENT_PERMITS:
        return CLIENT
    if name in _RECIPIENT_PERMITS:
        return RECIPIENT
    return list_class


def permit_text(action: str, reply_class: str, reply_name: str, table: str = "") -> str:
    """The text of the permit line (smtpd_check.c smtpd_acl_permit)."""
    return f"action={action} for {reply_class}={reply_name} " + (f"from {table}" if table else "")
