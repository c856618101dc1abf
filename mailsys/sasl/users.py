"""users - the SASL user file (smtpd_sasl_users_file).

DESCRIPTION
    One user per line, ``name:credential[:credential]``, where a credential
    is a $scrypt$ hash or a CRAM-MD5 key: Dovecot's {CRAM-MD5} (written), or
    the older {CRAM-MD5-KEY} (still read, converted on the fly; see
    passwords.py). At most one of each kind. `mailsys saslpasswd add` writes
    the scrypt hash alone; with --cram-md5 the hash and then the {CRAM-MD5}
    key, so PLAIN and LOGIN are checked against the slow hash and CRAM-MD5
    against the key. An entry with only a key (pasted from `doveadm pw -s
    CRAM-MD5`) is valid too: PLAIN and LOGIN then compare the password's
    HMAC states with it. Only users with a key can use CRAM-MD5. Blank lines
    and lines starting with # are ignored and kept when the file is
    rewritten. A name holds no ':' and no white space. A bad line is skipped
    with a warning naming file and line, never fatal: one typo must not lock
    every user out.

        # mailsys saslpasswd writes this file
        alice:$scrypt$n=16384,r=8,p=1$3q2+7w...$Jx8...
        bob:$scrypt$n=16384,r=8,p=1$Zm9v...$YmFy...:{CRAM-MD5}9186d855e11e...2740
        carol:{CRAM-MD5}2dc40f88a4c2142c3b10cc4b4d11382a648f600301b78a4070172782192898d6

    UserDatabase serves smtpd: it reads the file on first use and again
    whenever its modification time, size or inode change (checked with one
    stat() per lookup), so `mailsys saslpasswd` takes effect without a
    reload. A missing file is an empty database.

    set_user() / delete_user() edit the text of the file, and
    write_users_file() replaces the file atomically (temporary file in the
    same directory, fsync, rename, mode 0600), so smtpd never reads half a
    file.

    Reads and writes plain files; no sockets.
"""

from __future__ import annotations

import os
from pathlib import Path

from mailsys.config.files import replace_file
from mailsys.frozen import frozen
from mailsys.sasl.passwords import (CRAM_PREFIX, LEGACY_CRAM_KEY_PREFIX, SCRYPT_PREFIX, BadCredential,
                                    CramMd5Key, ScryptHash, burn_time)

MECH_PLAIN = "PLAIN"
MECH_LOGIN = "LOGIN"
MECH_CRAM_MD5 = "CRAM-MD5"


def valid_username(name: str) -> bool:
    return bool(name) and not any(c == ":" or c.isspace() or ord(c) < 32 for c in name) \
        and not name.startswith("#")


@frozen
class User:
    name: str
    scrypt: ScryptHash | None = None
    cram: CramMd5Key | None = None

    def check_password(self, password: str) -> bool:
        """PLAIN / LOGIN: the password against the scrypt hash, else the CRAM-MD5 key."""
        if self.scrypt is not None:
            return self.scrypt.verify(password)
        if self.cram is not None:
            return self.cram.verify(password)
        return False


def parse_line(line: str) -> User:
    """One user line; raises BadCredential with the reason."""
    name, sep, rest = line.partition(":")
    name = name.strip()
    if not sep or not valid_username(name):
        raise BadCredential("expected name:credential")
    scrypt = None
    key = None
    for field in rest.strip().split(":"):
        if field.startswith(SCRYPT_PREFIX):
            if scrypt is not None:
                raise BadCredential("more than one $scrypt$ hash")
            scrypt = ScryptHash.parse(field)
        elif field.startswith((CRAM_PREFIX, LEGACY_CRAM_KEY_PREFIX)):
            if key is not None:
                raise BadCredential("more than one CRAM-MD5 key")
            key = CramMd5Key.parse(field)
        else:
            raise BadCredential("unknown credential scheme")
    if scrypt is None and key is None:
        raise BadCredential("no credential")
    return User(name, scrypt, key)


def parse_users(text: str, file: str = "sasl_users") -> tuple[dict[str, User], list[str]]:
    """Users by name, plus warnings for the lines that were skipped."""
    users: dict[str, User] = {}
    warnings: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            user = parse_line(stripped)
        except BadCredential as e:
            warnings.append(f"{file}, line {number}: {e}; entry ignored")
            continue
        users[user.name] = user
    return users, warnings


def _line_name(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#") or ":" not in stripped:
        return None
    return stripped.split(":", 1)[0].strip()


def set_user(text: str, name: str, credentials: list[str]) -> str:
    """The file text with name's line replaced (or appended)."""
    if not valid_username(name):
        raise BadCredential(f"invalid user name: {name!r}")
    new = f"{name}:{':'.join(credentials)}"
    lines = text.splitlines()
    out: list[str] = []
    done = False
    for line in lines:
        if _line_name(line) == name:
            if not done:
                out.append(new)
                done = True
            continue
        out.append(line)
    if not done:
        out.append(new)
    return "\n".join(out) + "\n"


def delete_user(text: str, name: str) -> tuple[str, bool]:
    """The file text without name's line, and whether it was there."""
    out = [line for line in text.splitlines() if _line_name(line) != name]
    found = len(out) != len(text.splitlines())
    return ("\n".join(out) + "\n" if out else ""), found


def list_users(text: str) -> list[str]:
    return [n for n in (_line_name(line) for line in text.splitlines()) if n]


def write_users_file(path: Path, text: str) -> None:
    """Replace path with text atomically, mode 0600."""
    replace_file(path, text, mode=0o600)


class UserDatabase:
    """The users of one file, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}
        self.warnings: tuple[str, ...] = ()

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._users, self.warnings = None, {}, ()
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._stamp, self._users, self.warnings = None, {}, ()
            return
        users, warnings = parse_users(text, str(self.path))
        self._stamp, self._users, self.warnings = stamp, users, tuple(warnings)

    def get(self, name: str) -> User | None:
        self._refresh()
        return self._users.get(name)

    def names(self) -> list[str]:
        self._refresh()
        return list(self._users)

    def mechanisms(self) -> tuple[str, ...]:
        """What EHLO offers: PLAIN LOGIN, plus CRAM-MD5 when some user has a key."""
        self._refresh()
        if any(u.cram is not None for u in self._users.values()):
            return (MECH_PLAIN, MECH_LOGIN, MECH_CRAM_MD5)
        return (MECH_PLAIN, MECH_LOGIN)

    def check_password(self, name: str, password: str) -> bool:
        """PLAIN / LOGIN check; an unknown user costs the same time as a known one."""
        user = self.get(name)
        if user is None:
            burn_time(password)
            return False
        return user.check_password(password)
