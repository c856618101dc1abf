"""aliases - alias expansion for one local recipient, as Postfix's local(8) does it.

SYNOPSIS
    settings = AliasSettings.from_config(cfg, is_here)
    steps = expand(Target(address, orig, sender, ...), settings, seen=Seen(limit),
                   loops=delivered_to_addresses)
    # [Mailbox(target), Forward(target), Command(target, "prog -x", privs),
    #  File(target, "/var/log/x", privs), Failure(target, "5.4.6", "alias database loop for x")]

DESCRIPTION
    Before a local recipient's mailbox is written, local(8) looks the local
    part up in $alias_maps (lower case; first with its address extension,
    then without it, as recipient_delimiter splits it) and delivers to what
    the alias lists instead. This module decides where each piece goes; it
    writes nothing (mailsys.delivery.local carries the steps out, and
    services/local submits the forwarded copies to cleanup). The rules are
    those of Postfix's local/recipient.c, alias.c, include.c, token.c and
    resolve.c:

      * an element that is an address (a bare name gets @$myorigin) is
        delivered here again, recursively, when this agent would deliver it
        (is_here: it resolves to this transport) and neither an owner-
        alias nor an :include: file is involved; otherwise it is forwarded:
        a new message through cleanup with the sender, one per top-level
        recipient, Delivered-To address and sender;
      * ``|command`` and ``/file`` run as the alias table's owner, or as
        $default_privs when root owns the table (or for a table without a
        file), or as an :include: file's owner when a root-owned alias
        includes a file owned by someone else; allowed only where
        allow_mail_to_commands / allow_mail_to_files name the expansion
        type (alias, include; forward is for .forward files), else 5.7.1
        "mail to command is restricted" / "mail to file is restricted";
      * ``:include:/path`` reads the file (absolute path, a regular file,
        not world writable, else 5.3.5 "mail system configuration error"
        with a warning that says why); its elements are expanded with type
        include and always forwarded when they are addresses;
      * owner-NAME: with owner_request_special, an alias NAME whose
        companion owner-NAME exists gets the envelope sender
        owner-NAME@$myorigin (its value with expand_owner_alias), and its
        expansion loses the original recipient, ORCPT and ENVID (a mailing
        list starts fresh, RFC 3461); NOTIFY loses SUCCESS in every
        expansion;
      * an alias that lists its own name delivers that name to its mailbox
        instead of expanding it again; deeper than 100 levels is
        "alias database loop for NAME" (5.4.6, with a warning); an address
        already named in the message's Delivered-To headers is "mail
        forwarding loop for ADDR" (5.4.6);
      * duplicates are dropped: the same address at the same depth, the
        same :include: file, command, file or forwarded address, at most
        duplicate_filter_limit of them remembered per delivery request;
      * an address extension that only matched without it is appended to
        the expansion's addresses when propagate_unmatched_extensions
        names alias (include: also to those of :include: files);
      * an alias whose value names nothing is "alias database unavailable"
        (4.3.0, with Postfix's warning), as is a table that cannot be read.

    A local user (a password entry) that no alias took gets the first
    .forward file on $forward_path (local_expand names: $user, $home,
    $shell, $recipient, $local, $domain, $extension, $recipient_delimiter,
    each value with every character outside $forward_expansion_filter
    turned into "_" first, as Postfix's local_expand() does; an entry
    naming an empty one is skipped): a regular file owned by the
    user or root, not world writable, else skipped with a warning. Its
    elements expand with type forward and the user's rights; an address
    of the user herself, or ``\\user``, goes to her mailbox; other local
    addresses are forwarded (Postfix sets the owner attribute). Then the
    mailbox (mailbox.c): mailbox_transport(_maps) hands it to another
    transport, mailbox_command(_maps) runs as the user (needs a password
    entry), else the mailbox itself; a user without one goes to
    fallback_transport(_maps), luser_relay, or bounces 5.1.1 unknown user.

    Every step carries the recipient as the log line names it: to= the
    address being delivered at that point, orig_to= the original
    recipient (Postfix's SENT_ATTR/BOUNCE_ATTR of that moment).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mailsys.config.aliases import split_alias_value
from mailsys.delivery.command import DEFAULT_EXPANSION_FILTER, filtered
from mailsys.frozen import frozen

__all__ = ["AliasSettings", "Privs", "Target", "Mailbox", "Forward", "Command", "File", "Pass",
           "Failure", "Seen", "expand", "split_local", "local_expand", "local_expand_checked",
           "MAX_LEVEL"]

# Postfix's local(8) gives up on alias nesting deeper than this (alias.c).
MAX_LEVEL = 100
CONFIG_ERROR = "mail system configuration error"


@frozen
class Privs:
    """Whose rights a command or file delivery gets."""
    uid: int
    gid: int
    name: str
    home: str = ""
    shell: str = ""

    @classmethod
    def of(cls, entry: pwd.struct_passwd) -> Privs:
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir, entry.pw_shell)


@frozen
class Target:
    """One recipient at one point of the expansion (Postfix's DELIVER_ATTR)."""
    address: str
    orig: str                       # the original recipient ("" after an owner- reset)
    sender: str
    delivered: str = ""             # the Delivered-To: address of a forwarded copy
    owner: str = ""                 # owner-, :include: or .forward: addresses are forwarded
    exp_type: str = ""              # "", "alias", "include", "forward"
    exp_from: str = ""              # the alias this target came from
    level: int = 0
    privs: Privs | None = None      # None: root-owned source, $default_privs at delivery
    unmatched: str = ""             # extension to splice into expanded addresses
    delimiter: str = ""             # the delimiter that cut it off
    orcpt: str = ""
    notify: tuple[str, ...] = ()
    envid_reset: bool = False       # owner- alias: the copy drops ENVID and RET


@frozen
class Mailbox:
    target: Target


@frozen
class Forward:
    target: Target


@frozen
class Command:
    target: Target
    command: str
    privs: Privs | None


@frozen
class File:
    target: Target
    path: str
    privs: Privs | None


@frozen
class Pass:
    """Hand the recipient to another transport (mailbox_transport, fallback_transport)."""
    target: Target
    transport: str


@frozen
class Failure:
    target: Target
    dsn: str
    text: str


Step = Mailbox | Forward | Command | File | Pass | Failure


@dataclass(slots=True)
class Seen:
    """The duplicate filter of one delivery request (Postfix been_here)."""
    limit: int = 1000
    keys: set = field(default_factory=set)

    def __call__(self, *key: object) -> bool:
        """True when key was seen before; remembers it (while under the limit)."""
        if key in self.keys:
            return True
        if self.limit <= 0 or len(self.keys) < self.limit:
            self.keys.add(key)
        return False


def _default_owner_of(table: object) -> int:
    """uid of the file behind a table; 0 (root: default rights) when it has none."""
    path = getattr(table, "path", None)
    if path is None:
        return 0
    try:
        return os.stat(path).st_uid
    except OSError:
        return 0


@frozen
class AliasSettings:
    maps: tuple = ()
    myorigin: str = "localhost"
    delimiter: str = ""
    owner_request_special: bool = True
    expand_owner_alias: bool = False
    propagate: frozenset = frozenset()          # propagate_unmatched_extensions
    commands: frozenset = frozenset({"alias", "forward"})
    files: frozenset = frozenset({"alias", "forward"})
    dup_limit: int = 1000
    is_here: Callable[[str], bool] = lambda address: False
    # The resolver calls the address bad syntax (allow_min_user,
    # resolve_null_domain, resolve_numeric_domain): the recipient bounces.
    bad_syntax: Callable[[str], bool] = lambda address: False
    owner_of: Callable[[object], int] = _default_owner_of
    user_of: Callable[[int], Privs | None] = lambda uid: _privs_of_uid(uid)
    warn: Callable[[str], None] = lambda text: None
    fatal: Callable[[str], None] = lambda text: None     # a command child's "fatal:" line
    # Mailbox delivery of a user (mailbox.c) and of an unknown one (unknown.c).
    mailbox_transport: str = ""
    mailbox_transport_maps: tuple = ()
    mailbox_command: str = ""
    mailbox_command_maps: tuple = ()
    fallback_transport: str = ""
    fallback_transport_maps: tuple = ()
    luser_relay: str = ""
    forward_path: tuple[str, ...] = ()
    forward_filter: str = DEFAULT_EXPANSION_FILTER    # forward_expansion_filter
    # frozen_delivered_to: the Delivered-To address stays the one the
    # delivery started with; "no" makes it follow each alias, .forward and
    # mailbox step (Postfix's alias.c, dotforward.c, mailbox.c).
    frozen_delivered: bool = True
    require_home: bool = False      # require_home_directory
    knows: Callable[[str], bool] = lambda address: True     # has a mailbox here
    passwd: Callable[[str], Privs | None] = lambda user: _privs_of_name(user)
    # How |command and /file destinations are run (mailsys.delivery.local).
    default_privs: str = "nobody"
    time_limit: float = 1000.0
    shell: str = ""
    export: tuple[str, ...] = ("TZ", "MAIL_CONFIG", "LANG")
    expansion_filter: str = ""
    config_dir: str = ""
    # The working directory of commands: command_execution_directory (its
    # $names expanded, then execution_directory_expansion_filter), else the
    # queue directory, as local(8) says.
    exec_directory: str = ""
    exec_filter: str = ""
    queue_directory: str = ""

    @classmethod
    def from_config(cls, cfg, is_here: Callable[[str], bool], warn: Callable[[str], None],
                    open_table: Callable[[str], object] | None = None,
                    fatal: Callable[[str], None] = lambda text: None) -> AliasSettings:
        if open_table is None:
            from mailsys.config.tables import open_table as _open
            open_table = lambda spec: _open(spec, cfg)     # noqa: E731
        return cls(maps=tuple(open_table(s) for s in cfg.alias_maps), myorigin=cfg.myorigin,
                   delimiter=cfg.recipient_delimiter,
                   owner_request_special=cfg.owner_request_special,
                   expand_owner_alias=cfg.expand_owner_alias,
                   propagate=frozenset(cfg.propagate_unmatched_extensions),
                   commands=frozenset(cfg.allow_mail_to_commands),
                   files=frozenset(cfg.allow_mail_to_files),
                   dup_limit=cfg.duplicate_filter_limit, is_here=is_here, warn=warn,
                   fatal=fatal,
                   default_privs=cfg.default_privs, time_limit=float(cfg.command_time_limit),
                   shell=cfg.local_command_shell, export=tuple(cfg.export_environment),
                   expansion_filter=cfg.command_expansion_filter,
                   config_dir=str(cfg.config_dir),
                   exec_directory=cfg.raw("command_execution_directory"),
                   exec_filter=cfg.execution_directory_expansion_filter,
                   queue_directory=str(cfg.path("queue_directory")),
                   mailbox_transport=cfg.mailbox_transport,
                   mailbox_transport_maps=tuple(open_table(s) for s in cfg.mailbox_transport_maps),
                   mailbox_command=cfg.mailbox_command,
                   mailbox_command_maps=tuple(open_table(s) for s in cfg.mailbox_command_maps),
                   fallback_transport=cfg.fallback_transport,
                   fallback_transport_maps=tuple(open_table(s)
                                                 for s in cfg.fallback_transport_maps),
                   luser_relay=cfg.luser_relay, forward_path=tuple(cfg.forward_path),
                   forward_filter=cfg.forward_expansion_filter,
                   frozen_delivered=cfg.frozen_delivered_to,
                   require_home=cfg.require_home_directory)


def _privs_of_name(user: str) -> Privs | None:
    try:
        return Privs.of(pwd.getpwnam(user))
    except (KeyError, UnicodeError):
        return None


def _privs_of_uid(uid: int) -> Privs | None:
    try:
        return Privs.of(pwd.getpwuid(uid))
    except KeyError:
        return None


def split_local(address: str, delimiters: str, owner_request_special: bool = True
                ) -> tuple[str, str, str, str, str]:
    """(local, user, extension, delimiter, domain) of an address, lower-cased.

    owner-NAME and NAME-request keep their "-" when it is a delimiter
    (Postfix split_addr() with owner_request_special)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    local = local.lower()
    user, ext, delim = local, "", ""
    if delimiters:
        cuts = sorted((i, c) for i, c in ((local.find(c), c) for c in delimiters) if i > 0)
        if cuts:
            i, c = cuts[0]
            special = owner_request_special and c == "-" and (
                local.startswith("owner-") or local.endswith("-request"))
            if not special and "/" not in local[i + 1:]:
                user, ext, delim = local[:i], local[i + 1:], c
    return local, user, ext, delim, domain.lower()


@dataclass(slots=True)
class _Expansion:
    settings: AliasSettings
    seen: Seen
    loops: frozenset
    steps: list = field(default_factory=list)

    def fail(self, target: Target, dsn: str, text: str) -> None:
        self.steps.append(Failure(target, dsn, text))

    # -- recipient.c ---------------------------------------------------------------

    def recipient(self, t: Target) -> None:
        t = replace(t, level=t.level + 1)
        if self.seen("recipient", t.level, t.address.lower()):
            return
        if t.address.lower() in self.loops:
            self.fail(t, "5.4.6", f"mail forwarding loop for {t.address}")
            return
        if not t.delivered or not self.settings.frozen_delivered:
            t = replace(t, delivered=t.address)
        local, user, ext, delim, domain = split_local(t.address, self.settings.delimiter,
                                                      self.settings.owner_request_special)
        if local.startswith("\\"):          # \user: straight to the mailbox
            t = replace(t, address=t.address[1:])
            self.mailbox(t, local[1:], user[1:])
            return
        if not user:
            self.fail(t, "5.1.3", f'null username in "{t.address}"')
            return
        if self.alias(t, local, ""):
            return
        if ext:
            unmatched = ext if "alias" in self.settings.propagate else ""
            if self.alias(replace(t, unmatched=unmatched, delimiter=delim), user, ext):
                return
        if t.owner and t.owner.lower() != user:
            self.forward(t)
        elif t.exp_type == "include":
            self.forward(t)
        elif self.home_missing(t, user):
            return
        elif not self.dotforward(t, local, user, ext, delim, domain):
            self.mailbox(t, local, user)

    def home_missing(self, t: Target, user: str) -> bool:
        """require_home_directory: a user with a password entry whose home
        cannot be looked at is deferred, before her .forward and mailbox.
        Postfix 3.7.11 logged "dsn=4.3.0, status=deferred (cannot access
        home directory /nonexistent: No such file or directory)"."""
        s = self.settings
        if not s.require_home:
            return False
        privs = s.passwd(user)
        if privs is None:
            return False
        try:
            os.stat(privs.home)
        except OSError as e:
            self.fail(t, "4.3.0", f"cannot access home directory {privs.home}: {e.strerror}")
            return True
        return False

    # -- dotforward.c --------------------------------------------------------------

    def dotforward(self, t: Target, local: str, user: str, ext: str, delim: str,
                   domain: str) -> bool:
        """Expand the user's first .forward file on $forward_path; False when none."""
        s = self.settings
        if not s.forward_path:
            return False
        if t.exp_type == "forward" and t.exp_from.lower() == user:
            return False                    # listed in her own .forward: the mailbox
        privs = s.passwd(user)
        if privs is None:
            return False
        values = {"user": user, "home": privs.home, "shell": privs.shell,
                  "recipient": t.address, "local": local, "domain": domain,
                  "extension": ext, "recipient_delimiter": delim if ext else ""}
        # dotforward.c: local_expand(..., var_fwd_exp_filt) masks each value.
        values = {k: filtered(v, s.forward_filter) for k, v in values.items()}
        for item in s.forward_path:
            path, complete = local_expand_checked(item, values)
            if not complete or not path.startswith("/"):
                continue                    # an entry that names an unset value is skipped
            if self.seen("forward file", path):
                return True
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            except OSError as e:
                s.warn(f"cannot access {path}: {e.strerror}")
                continue
            if not stat.S_ISREG(st.st_mode):
                s.warn(f"file {path} is not a regular file")
                continue
            if st.st_uid not in (0, privs.uid):
                s.warn(f"file {path} has bad owner uid {st.st_uid}")
                continue
            if st.st_mode & stat.S_IWOTH:
                s.warn(f"file {path} is world writable")
                continue
            try:
                text = _read_as(path, privs)
            except OSError as e:
                s.warn(f"cannot open {path}: {e.strerror}")
                continue
            f = replace(t, exp_type="forward", exp_from=user, privs=privs, owner=user,
                        unmatched=ext if "forward" in s.propagate else "", delimiter=delim)
            for line in text.splitlines():
                stripped = line.strip()
                if stripped and not stripped.startswith("#"):
                    self.tokens(f, stripped)
            return True
        return False

    # -- mailbox.c, unknown.c ------------------------------------------------------

    def mailbox(self, t: Target, local: str, user: str) -> None:
        s = self.settings
        if self.seen("mailbox", local):
            return
        transport = self._map_or(s.mailbox_transport_maps, user, s.mailbox_transport, t)
        if transport is None:
            return
        if transport:
            self.steps.append(Pass(t, transport))
            return
        command = self._map_or(s.mailbox_command_maps, user, s.mailbox_command, t)
        if command is None:
            return
        if command:
            privs = s.passwd(user)
            if privs is None:
                self.unknown(t, user)
            else:
                self.steps.append(Command(t, command, privs))
            return
        if s.knows(t.address):
            self.steps.append(Mailbox(t))
        else:
            self.unknown(t, user)

    def unknown(self, t: Target, user: str) -> None:
        s = self.settings
        transport = self._map_or(s.fallback_transport_maps, user, s.fallback_transport, t)
        if transport is None:
            return
        if transport:
            self.steps.append(Pass(t, transport))
        elif s.luser_relay:
            local, _, ext, delim, domain = split_local(t.address, s.delimiter,
                                                      s.owner_request_special)
            relay = local_expand(s.luser_relay, {
                "user": user, "local": local, "extension": ext, "domain": domain,
                "recipient": t.address, "recipient_delimiter": delim or s.delimiter})
            self.address(replace(t, unmatched=""), relay.strip())
        else:
            self.fail(t, "5.1.1", f'unknown user: "{user}"')

    def _map_or(self, tables: tuple, user: str, default: str, t: Target) -> str | None:
        """The tables' value for user, else default; None when a table broke
        (the recipient is deferred)."""
        try:
            for table in tables:
                value = table.lookup(user)
                if value is not None:
                    return value.strip()
        except Exception as e:
            self.settings.warn(f"table lookup error for {user}: {e}")
            self.fail(t, "4.3.0", "table lookup error")
            return None
        return default

    # -- alias.c -------------------------------------------------------------------

    def alias(self, t: Target, name: str, ext: str) -> bool:
        t = replace(t, level=t.level + 1)
        if t.exp_from and t.exp_from.lower() == name:
            return False                    # an alias that lists itself: its mailbox
        if t.level > MAX_LEVEL:
            self.settings.warn(f"alias database loop for {name}")
            self.fail(t, "5.4.6", f"alias database loop for {name}")
            return True
        try:
            found = self._lookup(name)
        except Exception as e:              # the table broke: try again later
            self.settings.warn(f"alias database unavailable: {e}")
            self.fail(t, "4.3.0", "alias database unavailable")
            return True
        if found is None:
            return False
        table, value = found
        uid = self.settings.owner_of(table)
        privs = None
        if uid != 0:
            privs = self.settings.user_of(uid)
            if privs is None:
                self.settings.warn(f"cannot find alias database owner for {table.spec}")
                self.fail(t, "4.3.0", "cannot find alias database owner")
                return True
        owner = ""
        if self.settings.owner_request_special:
            owner_name = f"owner-{name}"
            try:
                owner_found = self._lookup(owner_name)
            except Exception:
                owner_found = None
            if owner_found is not None:
                owner = owner_found[1].strip() if self.settings.expand_owner_alias else owner_name
                owner = self._qualify(owner)
        notify = tuple(n for n in t.notify if n != "SUCCESS") or (
            ("NEVER",) if t.notify else ())
        t = replace(t, exp_type="alias", exp_from=name, privs=privs, owner=owner, notify=notify)
        if owner:
            t = replace(t, sender=owner, orig="", orcpt="", envid_reset=True)
        count = self.tokens(t, value)
        if count < 1:
            self.settings.warn(f"no recipient in alias lookup result for {name}")
            self.fail(t, "4.3.0", "alias database unavailable")
        return True

    def _lookup(self, name: str) -> tuple[object, str] | None:
        for table in self.settings.maps:
            value = table.lookup(name)
            if value is not None:
                return table, value
        return None

    def _qualify(self, address: str) -> str:
        return address if "@" in address else f"{address}@{self.settings.myorigin}"

    # -- token.c -------------------------------------------------------------------

    def tokens(self, t: Target, text: str) -> int:
        count = 0
        for element in split_alias_value(text):
            count += 1
            self.token(t, element)
        return count

    def token(self, t: Target, element: str) -> None:
        if element.startswith("|"):
            self.command(t, element[1:].strip())
        elif element.startswith("/"):
            self.file(t, element)
        elif element.lower().startswith(":include:"):
            self.include(t, element[len(":include:"):].strip())
        else:
            self.address(t, element)

    def command(self, t: Target, command: str) -> None:
        if t.exp_type not in self.settings.commands:
            self.fail(t, "5.7.1", "mail to command is restricted")
            return
        if self.seen("command", t.privs.uid if t.privs else 0, command):
            return
        self.steps.append(Command(t, command, t.privs))

    def file(self, t: Target, path: str) -> None:
        if t.exp_type not in self.settings.files:
            self.fail(t, "5.7.1", "mail to file is restricted")
            return
        if self.seen("file", path):
            return
        self.steps.append(File(t, path, t.privs))

    # -- include.c -----------------------------------------------------------------

    def include(self, t: Target, path: str) -> None:
        t = replace(t, level=t.level + 1)
        if self.seen("include", t.privs.uid if t.privs else 0, path):
            return
        if not path.startswith("/"):
            return self._include_error(t, f":include:{path} uses a relative path")
        try:
            st = os.stat(path)
        except OSError as e:
            return self._include_error(t, f"unable to lookup :include: file {path}: {e.strerror}")
        if not stat.S_ISREG(st.st_mode):
            return self._include_error(t, f":include: file {path} is not a regular file")
        if st.st_mode & stat.S_IWOTH:
            return self._include_error(t, f":include: file {path} is world writable")
        privs = t.privs
        if privs is None and st.st_uid != 0:
            privs = self.settings.user_of(st.st_uid)
            if privs is None:
                self.settings.warn(f"cannot find username for uid {st.st_uid}")
                self.settings.warn(f"{path}: cannot find :include: file owner username")
                self.fail(t, "4.3.5", CONFIG_ERROR)
                return
        t = replace(t, exp_type="include", privs=privs, owner=t.owner or t.address,
                    unmatched=t.unmatched if "include" in self.settings.propagate else "")
        try:
            text = _read_as(path, privs)
        except OSError as e:
            return self._include_error(t, f"cannot open include file {path}: {e.strerror}")
        for line in text.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                self.tokens(t, stripped)

    def _include_error(self, t: Target, warning: str) -> None:
        self.settings.warn(warning)
        self.fail(t, "5.3.5", CONFIG_ERROR)

    # -- resolve.c -----------------------------------------------------------------

    def address(self, t: Target, element: str) -> None:
        address = self._qualify(element)
        if t.unmatched:
            local, at, domain = address.rpartition("@")
            address = f"{local}{t.delimiter}{t.unmatched}@{domain}"
        if self.settings.bad_syntax(address):
            # Postfix 3.7.11, alias "minus: -bar@example.net": "to=<minus@localhost>,
            # relay=local, ... dsn=5.1.3, status=bounced (bad recipient address
            # syntax: -bar@example.net)".
            self.fail(t, "5.1.3", f"bad recipient address syntax: {address}")
            return
        # resolve.c counts a level too: it decides where a loop is reported.
        t = replace(t, address=address, level=t.level + 1)
        if self.settings.is_here(address):
            self.recipient(t)
        else:
            self.forward(t)

    def forward(self, t: Target) -> None:
        if self.seen("forward", t.delivered.lower(), t.sender.lower(), t.address.lower()):
            return
        self.steps.append(Forward(t))


def _read_as(path: str, privs: Privs | None) -> str:
    """The file's text, when privs may read it (Postfix opens it with their
    rights). A thread may not change the process's rights, so the file's
    permission bits are checked against privs instead (the directories on
    the way are not)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        if privs is not None and os.geteuid() == 0 and not _may_read(os.fstat(f.fileno()), privs):
            raise PermissionError(13, os.strerror(13))
        return f.read()


def _may_read(st: os.stat_result, privs: Privs) -> bool:
    if st.st_uid == privs.uid:
        return bool(st.st_mode & stat.S_IRUSR)
    groups = {privs.gid}
    try:
        import grp
        groups.update(g.gr_gid for g in grp.getgrall() if privs.name in g.gr_mem)
    except (ImportError, OSError):
        pass
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


_MACRO = re.compile(r"\$(?:\{(\w+)(?:([?:])([^}]*))?\}|\((\w+)(?:([?:])([^)]*))?\)|(\w+))")


def local_expand_checked(template: str, values: dict[str, str]) -> tuple[str, bool]:
    """local_expand(), and whether every name used unconditionally was set
    (forward_path skips an entry that names an empty $extension)."""
    complete = True

    def one(m: re.Match) -> str:
        nonlocal complete
        name = m.group(1) or m.group(4) or m.group(7)
        if not (m.group(2) or m.group(5)) and not values.get(name):
            complete = False
        return m.group(0)
    _MACRO.sub(one, template)
    return local_expand(template, values), complete


def local_expand(template: str, values: dict[str, str]) -> str:
    """$name, ${name}, ${name?text} (text when name is not empty) and
    ${name:text} (text when it is) with local(8)'s names (local_expand(3)):
    user, local, extension, domain, recipient, recipient_delimiter, home,
    shell; an unknown name is empty."""
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(4) or m.group(7)
        op = m.group(2) or m.group(5)
        text = m.group(3) if m.group(2) else m.group(6)
        value = values.get(name, "")
        if op == "?":
            return local_expand(text, values) if value else ""
        if op == ":":
            return "" if value else local_expand(text, values)
        return value
    return _MACRO.sub(one, template.replace("$$", "\0")).replace("\0", "$")


def expand(target: Target, settings: AliasSettings, seen: Seen,
           loops: frozenset = frozenset()) -> list[Step]:
    """The steps that deliver one top-level local recipient."""
    run = _Expansion(settings, seen, loops)
    run.recipient(target)
    return run.steps
