"""mailbox - which Maildir a local or virtual recipient's mail goes to.

SYNOPSIS
    settings = MailboxSettings.from_config(cfg)
    box = find_mailbox("bob@example.com", "virtual", settings)   # Mailbox(path, limit)
    # MailboxError(dsn, text): unknown user (5.1.1), configuration trouble (4.3.5)

DESCRIPTION
    Postfix has two mailbox agents and mailsys one; the address class that
    qmgr puts in the request picks the rules (mailsys.routing explains the
    classes):

    virtual (virtual(8))
        virtual_mailbox_maps is looked up with the full address, then the
        address without its extension (recipient_delimiter), then
        ``@domain`` (a catch-all). The result is a path relative to
        virtual_mailbox_base; one ending in ``/`` is a Maildir. Size limit:
        virtual_mailbox_limit. Unknown: 5.1.1 ``unknown user: "bob@example.com"``.

    local (local(8), mydestination)
        The user is the local part, lower-cased, without its extension.
        When local_recipient_maps is not empty the user (or the whole
        address) must be in it, else 5.1.1 ``unknown user: "bob"``. The
        mailbox is ``~user/$home_mailbox`` when home_mailbox is set (the
        home directory from the password file, as Postfix does), else
        ``$mail_spool_directory/user/``. Size limit: mailbox_size_limit.

    mailsys writes Maildirs only. A home_mailbox or virtual map result
    without the trailing ``/`` (an mbox file in Postfix) is a
    configuration error: the mail is deferred (4.3.5) and the log says
    why, never lost. mail_spool_directory is always a directory of
    Maildirs, with or without its trailing slash: set it to a path of your
    own (say ``/var/mail/maildirs/``) when /var/mail holds mbox files.

    A path from a table may not climb out of its base (``..``). Relative
    virtual_mailbox_base and mail_spool_directory values are taken from the
    directory that holds the configuration directory, like every mailsys
    path (Config.path).
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mailsys.routing import first_lookup

__all__ = ["Mailbox", "MailboxError", "MailboxSettings", "find_mailbox", "split_address"]


class MailboxError(Exception):
    def __init__(self, dsn: str, text: str) -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text


@dataclass(frozen=True, slots=True)
class Mailbox:
    path: Path
    limit: int = 0


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    virtual_base: str = ""
    virtual_maps: tuple = ()
    virtual_limit: int = 0
    local_maps: tuple = ()
    home_mailbox: str = ""
    spool: Path = Path("/var/mail")
    local_limit: int = 0
    recipient_delimiter: str = ""
    home_of: Callable[[str], str | None] = lambda user: _passwd_home(user)

    @classmethod
    def from_config(cls, cfg, open_table: Callable[[str], object] | None = None) -> MailboxSettings:
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
                   local_maps=tuple(open_table(s) for s in cfg.local_recipient_maps),
                   home_mailbox=cfg.home_mailbox,
                   spool=cfg.path("mail_spool_directory"),
                   local_limit=cfg.mailbox_size_limit,
                   recipient_delimiter=cfg.recipient_delimiter)


def _passwd_home(user: str) -> str | None:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        return None


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


def _maildir(path_text: str, what: str) -> None:
    if not path_text.endswith("/"):
        raise MailboxError("4.3.5", f"{what} {path_text!r} is not a Maildir (a path ending "
                                    f"in /): mailsys delivers to Maildir only")


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
        _maildir(found, "virtual mailbox")
        if not s.virtual_base:
            raise MailboxError("4.3.5", "virtual_mailbox_base is not set")
        return Mailbox(_inside(Path(s.virtual_base), found, "virtual mailbox"), s.virtual_limit)

    if s.local_maps and first_lookup(s.local_maps, [base, f"{base}@{domain}", local]) is None:
        raise MailboxError("5.1.1", f'unknown user: "{base}"')
    if s.home_mailbox:
        _maildir(s.home_mailbox, "home_mailbox")
        home = s.home_of(base)
        if home is None:
            raise MailboxError("5.1.1", f'unknown user: "{base}"')
        return Mailbox(_inside(Path(home), s.home_mailbox, "home_mailbox"), s.local_limit)
    if "/" in base or base in ("", ".", ".."):
        raise MailboxError("5.1.3", f'bad address syntax: "{address}"')
    return Mailbox(s.spool / base, s.local_limit)
