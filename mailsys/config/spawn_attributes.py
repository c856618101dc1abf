"""spawn_attributes - the command attributes of a spawn(8) service in master.cf.

SYNOPSIS
    policyd-spf  unix  -  n  n  -  0  spawn
        user=policyd-spf argv=/usr/bin/policyd-spf

    attrs = parse_spawn_attributes(("user=policyd-spf", "argv=/usr/bin/policyd-spf"),
                                   owner=cfg.mail_owner)
    attrs.uid, attrs.gid, attrs.argv      # 112, 117, ("/usr/bin/policyd-spf",)

DESCRIPTION
    The words after "spawn" in master.cf, read as Postfix's spawn(8) reads
    them (spawn.c get_service_attr()):

    user=USER, user=USER:GROUP (required)
        the command runs with USER's user ID, and with GROUP's group ID
        when given (an empty GROUP, "user=USER:", means USER's own);
    argv=COMMAND ARGS... (required, and last)
        the command and its arguments; every word after argv= belongs to
        the command, and it is executed without a shell.

    Attribute names are matched without regard to case. Anything else is
    refused with Postfix's words, which the spawn process logs as its fatal
    error: "unknown attribute name: NAME", "missing user= attribute",
    "missing argv= attribute", "unknown user name: USER", "unknown group
    name: GROUP", "request to deliver as root", "request to deliver as mail
    system owner", "request to use privileged group id 0", "request to use
    mail system owner group id N".

    The mail system owner is the $mail_owner account; when no such account
    exists (mailsys runs unprivileged under whatever account started it)
    there is no owner to refuse.

    Pure: reads the password and group databases, nothing else.
"""

from __future__ import annotations


from mailsys.config.accounts import UnknownGroup, UnknownUser, account_ids, owner_ids
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

__all__ = ["SpawnAttributes", "parse_spawn_attributes"]


@frozen
class SpawnAttributes:
    """Who runs what, for every connection to one spawn service."""

    user: str
    uid: int
    gid: int
    argv: tuple[str, ...]


def parse_spawn_attributes(args: tuple[str, ...] | list[str], *,
                           owner: str = "") -> SpawnAttributes:
    """parse_spawn_attributes - user= and argv= from the master.cf words; ConfigError if bad."""
    user: str | None = None
    uid = gid = -1
    argv: tuple[str, ...] | None = None
    for i, word in enumerate(args):
        lowered = word[:5].lower()
        if lowered == "user=":
            user, _, group = word[5:].partition(":")
            try:
                uid, gid = account_ids(user, group)
            except UnknownUser:
                raise ConfigError(f"unknown user name: {user}") from None
            except UnknownGroup:
                raise ConfigError(f"unknown group name: {group}") from None
        elif lowered == "argv=":
            argv = (word[5:], *args[i + 1:])
            break
        else:
            raise ConfigError(f"unknown attribute name: {word}")
    if user is None:
        raise ConfigError("missing user= attribute")
    if argv is None:
        raise ConfigError("missing argv= attribute")
    owner_id = owner_ids(owner) if owner else None
    if uid == 0:
        raise ConfigError("request to deliver as root")
    if owner_id is not None and uid == owner_id[0]:
        raise ConfigError("request to deliver as mail system owner")
    if gid == 0:
        raise ConfigError(f"request to use privileged group id {gid}")
    if owner_id is not None and gid == owner_id[1]:
        raise ConfigError(f"request to use mail system owner group id {gid}")
    return SpawnAttributes(user=user, uid=uid, gid=gid, argv=argv)
