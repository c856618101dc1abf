"""pipe_attr - the command attributes of a pipe(8) entry in master.cf.

SYNOPSIS
    # dovecot unix - n n - - pipe
    #   flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}
    attr = parse_attributes(spec.args, mail_owner="postfix")
    attr.flags          # frozenset({"D", "R", "h", "u"})
    attr.uid, attr.gid  # vmail's ids
    attr.argv           # ("/usr/lib/dovecot/deliver", "-f", "${sender}", "-d", "${recipient}")
    check_service(spec, mail_owner="postfix")   # ConfigError naming master.cf and the line

DESCRIPTION
    Postfix's get_service_attr() (src/pipe/pipe.c): the words after the
    command, each ``name=value`` with the name matched without regard to
    case, until ``argv=``, whose value and every word after it are the
    command:

      flags=BDFORXhqu.>   message processing flags (mailsys.delivery.pipe_copy
                          and pipe_macros say what each does); any other
                          letter is an error: ``unknown flag: x (ignored)``
      user=NAME[:GROUP]   required; the command runs with NAME's uid and
                          NAME's (or GROUP's) gid. Never root, group 0, or
                          the mail system owner ($mail_owner), as Postfix
                          refuses them
      directory=PATH      working directory of the command
                          (default $queue_directory)
      chroot=PATH         accepted and ignored, as the chroot column of
                          master.cf is (mailsys never chroots)
      eol=STRING          the line end written, with C escapes
                          (\\a \\b \\f \\n \\r \\t \\v \\ddd \\\\); default \\n
      null_sender=TEXT    what the null sender becomes (default MAILER-DAEMON)
      size=BYTES          larger messages bounce (5.2.3); 0 is no limit
      argv=COMMAND ...    required, last

    Errors are PipeAttrError with Postfix's words ("missing user=
    command-line attribute", "get_service_attr: unknown username: x").
    check_service() also parses every ${name} of argv (mailsys.delivery.
    pipe_macros), so `mailsys check` and `mailsys start` refuse an entry
    the agent could never use, naming master.cf and the line; a user= this
    host has no account for is only a warning there (see check_service).

    Pure apart from the password and group database look-ups.
"""

from __future__ import annotations

import re

from mailsys.config.accounts import UnknownGroup, UnknownUser, account_ids, owner_ids
from mailsys.delivery.pipe_macros import MacroError, parse_template
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

__all__ = ["PipeAttr", "PipeAttrError", "UnknownAccount", "FLAGS", "parse_attributes", "check_service",
           "unescape"]

FLAGS = "BDFORXhqu.>"
MAILER_DAEMON = "MAILER-DAEMON"           # Postfix MAIL_ADDR_MAIL_DAEMON


class PipeAttrError(Exception):
    """A pipe(8) entry the agent cannot run with (Postfix: msg_fatal)."""


class UnknownAccount(PipeAttrError):
    """user= names a user or group this host does not have (yet)."""


@frozen
class PipeAttr:
    argv: tuple[str, ...]
    user: str
    uid: int
    gid: int
    flags: frozenset[str] = frozenset()
    directory: str | None = None
    eol: bytes = b"\n"
    null_sender: str = MAILER_DAEMON
    size_limit: int = 0


_ESCAPES = {b"a": b"\a", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t",
            b"v": b"\v", b"\\": b"\\"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|.)", re.S)


def unescape(text: str) -> bytes:
    """Postfix unescape(3): C escapes in text to bytes; an unknown escape
    keeps its backslash."""
    def one(m: re.Match) -> bytes:
        what = m.group(1)
        if what[:1].isdigit():
            return bytes([int(what, 8) & 0xFF])
        return _ESCAPES.get(what, b"\\" + what)
    return _ESCAPE.sub(one, text.encode("utf-8", "surrogateescape"))


def _value(word: str, name: str) -> str | None:
    prefix = name + "="
    return word[len(prefix):] if word[:len(prefix)].lower() == prefix else None


def _ids(value: str, accounts: bool) -> tuple[str, int, int]:
    user, _, group = value.partition(":")
    if not accounts:
        return user, -1, -1
    try:
        uid, gid = account_ids(user, group)
    except UnknownUser:
        raise UnknownAccount(f"get_service_attr: unknown username: {user}") from None
    except UnknownGroup:
        raise UnknownAccount(f"get_service_attr: unknown group: {group}") from None
    return user, uid, gid


def parse_attributes(args: tuple[str, ...] | list[str], mail_owner: str = "",
                     accounts: bool = True) -> PipeAttr:
    """The attributes of one pipe(8) entry (see DESCRIPTION); PipeAttrError if
    unusable. accounts=False checks the syntax only: user= is not looked up
    (uid and gid are -1)."""
    flags: set[str] = set()
    ids: tuple[str, int, int] | None = None
    command: tuple[str, ...] | None = None
    directory, eol, null_sender, size = None, b"\n", MAILER_DAEMON, 0
    for n, word in enumerate(args):
        if (v := _value(word, "flags")) is not None:
            for c in v:
                if c not in FLAGS:
                    raise PipeAttrError(f"unknown flag: {c} (ignored)")
                flags.add(c)
        elif (v := _value(word, "user")) is not None:
            ids = _ids(v, accounts)
        elif (v := _value(word, "directory")) is not None:
            directory = v
        elif _value(word, "chroot") is not None:
            pass                          # see DESCRIPTION
        elif (v := _value(word, "eol")) is not None:
            eol = unescape(v)
        elif (v := _value(word, "null_sender")) is not None:
            null_sender = v
        elif (v := _value(word, "size")) is not None:
            if v and not v.isdigit():
                raise PipeAttrError(f"get_service_attr: bad size= value: {v}")
            size = int(v or 0)
        elif (v := _value(word, "argv")) is not None:
            command = (v, *args[n + 1:])
            break
        else:
            raise PipeAttrError(f"unknown attribute name: {word}")
    if ids is None:
        raise PipeAttrError("missing user= command-line attribute")
    if command is None:
        raise PipeAttrError("missing argv= command-line attribute")
    user, uid, gid = ids
    owner = owner_ids(mail_owner) if mail_owner and accounts else None
    if uid == 0:
        raise PipeAttrError("user= command-line attribute specifies root privileges")
    if owner is not None and uid == owner[0]:
        raise PipeAttrError(f"user= command-line attribute specifies mail system owner {mail_owner}")
    if gid == 0:
        raise PipeAttrError("user= command-line attribute specifies privileged group id 0")
    if owner is not None and gid == owner[1]:
        raise PipeAttrError(f"user= command-line attribute specifies mail system owner "
                            f"{mail_owner} group id {gid}")
    return PipeAttr(argv=command, user=user, uid=uid, gid=gid, flags=frozenset(flags),
                    directory=directory, eol=eol, null_sender=null_sender, size_limit=size)


def check_service(spec, mail_owner: str = "", warnings: list[str] | None = None) -> PipeAttr:
    """The attributes of a master.cf ServiceSpec whose command is pipe, with
    every macro of its argv parsed; ConfigError naming the file and line.

    A user= account this host does not have is a warning, not an error:
    Postfix starts with such an entry (Debian's master.cf has several, for
    maildrop, uucp, mailman ...) and refuses only when mail is to go
    through it, and so does the pipe daemon."""
    where = f"{spec.file}, line {spec.line}: service {spec.name}"
    try:
        try:
            attr = parse_attributes(spec.args, mail_owner)
        except UnknownAccount as e:
            if warnings is not None:
                warnings.append(f"{where}: {e}")
            attr = parse_attributes(spec.args, mail_owner, accounts=False)
        for arg in attr.argv:
            parse_template(arg)
    except (PipeAttrError, MacroError) as e:
        raise ConfigError(f"service {spec.name}: {e}", file=spec.file, line=spec.line) from None
    return attr
