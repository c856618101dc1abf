"""mailbox - which mailbox a local or virtual recipient's mail goes to, and in what format.

SYNOPSIS
    settings = MailboxSettings.from_config(cfg)
    box = find_mailbox("bob@example.com", "virtual", settings)
    # Mailbox(path, limit, mbox, user, owner, locks)
    # MailboxError(dsn, text): unknown user (5.1.1), configuration trouble (4.3.5)

DESCRIPTION
    Postfix has two mailbox agents and mailsys one; the address class that
    qmgr puts in the request picks the rules (mailsys.routing explains the
    classes). As in Postfix, a path that ends in ``/`` is a Maildir
    (mailsys.delivery.maildir); any other path is a UNIX-style mailbox, an
    mbox file the message is appended to (mailsys.delivery.mbox).

    virtual (virtual(8))
        virtual_mailbox_maps is looked up with the full address, then the
        address without its extension (recipient_delimiter), then
        ``@domain`` (a catch-all). The result is a path relative to
        virtual_mailbox_base: ``example.com/bob/`` a Maildir,
        ``example.com/bob`` an mbox file. Size limit: virtual_mailbox_limit;
        mbox locks: virtual_mailbox_lock. A new mbox file is given to the
        uid and gid that virtual_uid_maps and virtual_gid_maps give the
        address (same lookup order) when they are set and mailsys runs as
        root; a uid below virtual_minimum_uid, or an address those maps
        lack, defers the mail (4.3.5). Unknown: 5.1.1 ``unknown user:
        "bob@example.com"``.

    local (local(8), mydestination)
        The user is the local part, lower-cased, without its extension.
        When local_recipient_maps is not empty the user (or the whole
        address) must be in it, else 5.1.1 ``unknown user: "bob"``. The
        mailbox is, in Postfix's order:

          home_mailbox set      ``~user/$home_mailbox`` (the home directory
                                from the password file, as Postfix does):
                                ``Maildir/`` a Maildir, ``Mailbox`` an mbox
          mail_spool_directory  ending in ``/`` (``/var/mail/``): the
                                Maildir ``$mail_spool_directory/user/``
          otherwise             the mbox file ``$mail_spool_directory/user``:
                                Postfix's default, /var/mail/user

        Size limit: mailbox_size_limit (for an mbox, the whole file); mbox
        locks: mailbox_delivery_lock. A new mbox file is given to the
        user's uid and gid from the password file when mailsys runs as root
        (Postfix writes it as the user); a user without a password entry
        leaves it to mailsys's own.

    A path from a table may not climb out of its base (``..``). Relative
    virtual_mailbox_base and mail_spool_directory values are taken from the
    directory that holds the configuration directory, like every mailsys
    path (Config.path).
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from pathlib import Path

from mailsys.delivery.mbox_lock import LockPolicy
from mailsys.frozen import frozen
from mailsys.routing import first_lookup

__all__ = ["Mailbox", "MailboxError", "MailboxSettings", "find_mailbox", "split_address"]


class MailboxError(Exception):
    def __init__(self, dsn: str, text: str) -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text


@frozen
class Mailbox:
    path: Path
    limit: int = 0
    mbox: bool = False                      # an mbox file, else a Maildir
    user: str = ""                          # local: the user name the log text gives
    owner: tuple[int, int] | None = None    # (uid, gid) for a new mbox file, when root
    locks: LockPolicy = LockPolicy()


@frozen
class MailboxSettings:
    virtual_base: str = ""
    virtual_maps: tuple = ()
    virtual_limit: int = 0
    virtual_uid_maps: tuple = ()
    virtual_gid_maps: tuple = ()
    virtual_minimum_uid: int = 100
    virtual_locks: LockPolicy = LockPolicy()
    local_maps: tuple = ()
    home_mailbox: str = ""
    spool: Path = Path("/var/mail")
    spool_maildir: bool = False             # mail_spool_directory ends in "/"
    local_limit: int = 0
    local_locks: LockPolicy = LockPolicy()
    recipient_delimiter: str = ""
    # prepend_delivered_header: the local(8) contexts that get Delivered-To
    # ("file" covers mailboxes too, as in Postfix; virtual(8) always adds it).
    delivered_header: frozenset = frozenset({"command", "file", "forward"})
    # enable_original_recipient: X-Original-To: in front of each copy.
    original_recipient: bool = True
    biff: bool = True                       # local mbox deliveries notify comsat
    # strict_mailbox_ownership: an mbox file must belong to the recipient;
    # warn says how to turn that off when it does not.
    strict_owner: bool = True
    warn: Callable[[str], None] = lambda text: None
    home_of: Callable[[str], str | None] = lambda user: _passwd_home(user)
    owner_of: Callable[[str], tuple[int, int] | None] = lambda user: _passwd_owner(user)

    @classmethod
    def from_config(cls, cfg, open_table: Callable[[str], object] | None = None,
                    warn: Callable[[str], None] = lambda text: None) -> MailboxSettings:
        if open_table is None:
            from mailsys.config.tables import open_table as _open
            open_table = lambda spec: _open(spec, cfg)     # noqa: E731
        base = cfg.virtual_mailbox_base
        if base:
            p = Path(base)
            base = str(p if p.is_absolute() else cfg.config_dir.absolute().parent / p)
        return cls(virtual_base=base,
                   virtual_maps=tuple(open_table(s) for s in cfg.virtual_mailbox_maps),
                   virtual_limit=cfg.virtual_mailbox_limit,
                   virtual_uid_maps=tuple(open_table(s) for s in cfg.virtual_uid_maps),
                   virtual_gid_maps=tuple(open_table(s) for s in cfg.virtual_gid_maps),
                   virtual_minimum_uid=cfg.virtual_minimum_uid,
                   virtual_locks=LockPolicy.from_config(cfg, "virtual_mailbox_lock"),
                   local_maps=tuple(open_table(s) for s in cfg.local_recipient_maps),
                   home_mailbox=cfg.home_mailbox,
                   spool=cfg.path("mail_spool_directory"),
                   spool_maildir=str(cfg.mail_spool_directory).endswith("/"),
                   local_limit=cfg.mailbox_size_limit,
                   local_locks=LockPolicy.from_config(cfg, "mailbox_delivery_lock"),
                   recipient_delimiter=cfg.recipient_delimiter,
                   delivered_header=frozenset(cfg.prepend_delivered_header),
                   original_recipient=cfg.enable_original_recipient,
                   biff=cfg.biff, strict_owner=cfg.strict_mailbox_ownership, warn=warn)


def _passwd_home(user: str) -> str | None:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return None


def _passwd_owner(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def split_address(address: str, delimiters: str) -> tuple[str, str, str]:
    """(user, user-without-extension, domain), user parts lower-cased."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    local = local.lower()
    base = local
    if delimiters:
        cuts = [i for i in (local.find(c) for c in delimiters) if i > 0]
        if cuts:
            base = local[:min(cuts)]
    return local, base, domain.lower()


def _inside(base: Path, relative: str, what: str) -> Path:
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise MailboxError("4.3.5", f"{what} {relative!r} must be a path inside {base}")
    return base / rel


def _virtual_owner(address: str, keys: list[str], s: MailboxSettings) -> tuple[int, int] | None:
    """(uid, gid) from virtual_uid_maps / virtual_gid_maps, or None when they are not set."""
    if not s.virtual_uid_maps and not s.virtual_gid_maps:
        return None
    ids = []
    for what, name, maps, lowest in (
            ("uid", "virtual_uid_maps", s.virtual_uid_maps, s.virtual_minimum_uid),
            ("gid", "virtual_gid_maps", s.virtual_gid_maps, 1)):
        found = first_lookup(maps, keys)
        if found is None:
            raise MailboxError("4.3.5", f"recipient {address}: not found in {name}")
        found = found.strip()
        value = int(found) if found.isdigit() else -1
        if value < lowest:
            raise MailboxError("4.3.5", f"recipient {address}: bad {what} {found} in {name}")
        ids.append(value)
    return ids[0], ids[1]


def find_mailbox(address: str, address_class: str, s: MailboxSettings) -> Mailbox:
    local, base, domain = split_address(address, s.recipient_delimiter)
    if address_class == "virtual":
        keys = [f"{local}@{domain}"]
        if base != local:
            keys.append(f"{base}@{domain}")
        keys.append(f"@{domain}")
        found = first_lookup(s.virtual_maps, keys)
        if found is None:
            raise MailboxError("5.1.1", f'unknown user: "{address.lower()}"')
        found = found.strip()
        if not s.virtual_base:
            raise MailboxError("4.3.5", "virtual_mailbox_base is not set")
        path = _inside(Path(s.virtual_base), found, "virtual mailbox")
        if found.endswith("/"):
            return Mailbox(path, s.virtual_limit)
        return Mailbox(path, s.virtual_limit, mbox=True, user=address.lower(),
                       owner=_virtual_owner(address.lower(), keys, s), locks=s.virtual_locks)

    if s.local_maps and first_lookup(s.local_maps, [base, f"{base}@{domain}", local]) is None:
        raise MailboxError("5.1.1", f'unknown user: "{base}"')
    if s.home_mailbox:
        home = s.home_of(base)
        if home is None:
            raise MailboxError("5.1.1", f'unknown user: "{base}"')
        path = _inside(Path(home), s.home_mailbox, "home_mailbox")
        if s.home_mailbox.endswith("/"):
            return Mailbox(path, s.local_limit)
        return Mailbox(path, s.local_limit, mbox=True, user=base, owner=s.owner_of(base),
                       locks=s.local_locks)
    if "/" in base or base in ("", ".", ".."):
        raise MailboxError("5.1.3", f'bad address syntax: "{address}"')
    if s.spool_maildir:
        return Mailbox(s.spool / base, s.local_limit)
    return Mailbox(s.spool / base, s.local_limit, mbox=True, user=base, owner=s.owner_of(base),
                   locks=s.local_locks)
