"""accounts - the user and group IDs a master.cf command attribute names.

SYNOPSIS
    uid, gid = account_ids("vmail", "mail")     # user=vmail:mail
    owner_ids("postfix")                        # (uid, gid), or None without such an account

DESCRIPTION
    spawn(8)'s and pipe(8)'s user=USER[:GROUP] attribute: USER's user ID,
    and GROUP's group ID when given (else USER's own). An unknown account
    raises UnknownUser or UnknownGroup; each caller words the error as its
    Postfix program does. owner_ids() gives $mail_owner's IDs, which
    neither command may run with.
"""

from __future__ import annotations

import grp
import pwd


class UnknownUser(KeyError):
    pass


class UnknownGroup(KeyError):
    pass


def account_ids(user: str, group: str = "") -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UnknownUser(user) from None
    if not group:
        return entry.pw_uid, entry.pw_gid
    try:
        return entry.pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise UnknownGroup(group) from None


def owner_ids(owner: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return None                       # no such account here: nothing to refuse
    return entry.pw_uid, entry.pw_gid


__all__ = ["UnknownGroup", "UnknownUser", "account_ids", "owner_ids"]
