"""tables - Postfix-style lookup tables: texthash, inline, static, regexp, pcre, cidr, lmdb.

    table = open_table("texthash:/etc/mailsys/virtual", cfg)
    table.lookup("alice@example.com")  -> "example.com/alice/" or None

A table spec is ``type:name`` as in Postfix (postconf(5), "lookup tables"):

    texthash:/path          ``key value`` lines, read at open (comments and
                            continuation lines as in main.cf); first of a
                            duplicated key wins
    lmdb:/path              /path.lmdb, compiled from a texthash-syntax
                            source by ``mailsys postmap lmdb:/path``
    inline:{ k=v, { k2 = v with spaces } }
    static:value            every key gives value (``static:{ a b }`` too)
    regexp:/path            regexp_table(5): ``/pattern/flags result``,
                            ``!/pattern/ result``, if/endif, $1 substitution;
                            POSIX extended expressions (posix_regex)
    cidr:/path              cidr_table(5): ``network/prefix result`` rules for
                            client addresses (cidr_table.py)
    pcre:/path              pcre_table(5): the same file syntax, the patterns
                            as Python's re reads them (Perl's syntax, mostly),
                            flags i m s x A E X (U is refused)
    unix:passwd.byname      the password file: ``name:x:uid:gid:gecos:home:shell``
    unix:group.byname       the group file: ``name:x:gid:member,member``

Keys of texthash, lmdb and inline tables are case-insensitive, as Postfix
folds them to lower case when it builds a table; regexp patterns are
case-insensitive unless the ``i`` flag turns that off. A relative path is
taken from the parent of the configuration directory (like Config.path).
An unknown type or a malformed table is a ConfigError naming the file and
line.

The lmdb module is imported only when an lmdb table is opened, so the rest of
mailsys.config stays free of it. An lmdb table file is only ever replaced
whole (postmap writes a new file and renames it into place), so readers open
it read-only without a lock file, and reopen it when it has been replaced.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from mailsys.config.cidr_table import read_cidr
from mailsys.config.files import sync_directory
from mailsys.config.lines import logical_lines
from mailsys.config.posix_regex import from_posix
from mailsys.config.values import BadValue, split_list, strip_braces
from mailsys.errors import ConfigError

LMDB_SUFFIX = ".lmdb"


class Table(Protocol):
    spec: str

    def lookup(self, key: str) -> str | None: ...


def open_table(spec: str, cfg) -> Table:
    """Open the table `spec` (``type:name``); relative paths use cfg.config_dir.parent."""
    kind, colon, name = spec.partition(":")
    if not colon or not kind or not name:
        raise ConfigError(f'open dictionary: expecting "type:name" form instead of "{spec}"')
    opener = OPENERS.get(kind)
    if opener is None:
        raise ConfigError(f"unsupported dictionary type: {kind} (in {spec})")
    return opener(spec, name, cfg)


def table_path(name: str, cfg) -> Path:
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.config_dir).absolute().parent / p


# -- key -> value tables -----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DictTable:
    """A table held in memory: texthash and inline."""
    spec: str
    entries: dict[str, str]

    def lookup(self, key: str) -> str | None:
        return self.entries.get(key.lower())


def read_text_table(path: Path) -> dict[str, str]:
    """Entries of a texthash-syntax file (also postmap's source format)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {file}: {e.strerror}") from None
    entries: dict[str, str] = {}
    for ll in logical_lines(text, file):
        parts = ll.text.split(None, 1)
        if len(parts) < 2:
            raise ConfigError(f'expected format: key whitespace value: "{ll.text}"', file=file, line=ll.line)
        entries.setdefault(parts[0].lower(), parts[1].strip())
    return entries


def _texthash(spec: str, name: str, cfg) -> Table:
    return DictTable(spec, read_text_table(table_path(name, cfg)))


def _inline(spec: str, name: str, cfg) -> Table:
    if not (name.startswith("{") and name.endswith("}")):
        raise ConfigError(f'bad inline table syntax: "{spec}": expected inline:{{ name=value, ... }}')
    entries: dict[str, str] = {}
    try:
        elements = split_list(name[1:-1])
    except BadValue as e:
        raise ConfigError(f"{e} in {spec}") from None
    for element in elements:
        key, eq, value = element.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f'bad inline table element "{element}" in "{spec}": expected name=value')
        entries.setdefault(key.strip().lower(), value.strip())
    return DictTable(spec, entries)


@dataclass(frozen=True, slots=True)
class StaticTable:
    spec: str
    value: str

    def lookup(self, key: str) -> str | None:
        return self.value


def _static(spec: str, name: str, cfg) -> Table:
    return StaticTable(spec, strip_braces(name))


# -- unix -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class UnixTable:
    """unix:passwd.byname and unix:group.byname, read through the C library."""
    spec: str
    map: str

    def lookup(self, key: str) -> str | None:
        import grp
        import pwd
        try:
            if self.map == "passwd.byname":
                pw = pwd.getpwnam(key.lower())
                return ":".join((pw.pw_name, pw.pw_passwd, str(pw.pw_uid), str(pw.pw_gid),
                                 pw.pw_gecos, pw.pw_dir, pw.pw_shell))
            gr = grp.getgrnam(key.lower())
            return ":".join((gr.gr_name, gr.gr_passwd, str(gr.gr_gid), ",".join(gr.gr_mem)))
        except (KeyError, UnicodeError):
            return None


def _unix(spec: str, name: str, cfg) -> Table:
    if name not in ("passwd.byname", "group.byname"):
        raise ConfigError(f"unknown table: {spec} (expected unix:passwd.byname or unix:group.byname)")
    return UnixTable(spec, name)


# -- regexp ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern
    negate: bool
    result: str | None          # None for "if"
    line: int


@dataclass(frozen=True, slots=True)
class RegexpTable:
    """regexp_table(5): the first matching rule gives the result."""
    spec: str
    rules: tuple            # of _Rule, or ("if", _Rule, rules) / nested

    def lookup(self, key: str) -> str | None:
        return _match(self.rules, key)


def _match(rules, key: str) -> str | None:
    for rule in rules:
        if isinstance(rule, tuple):                   # if /pattern/ ... endif
            cond, body = rule
            if (cond.pattern.search(key) is None) == cond.negate:
                found = _match(body, key)
                if found is not None:
                    return found
            continue
        m = rule.pattern.search(key)
        if rule.negate:
            if m is None:
                return rule.result
        elif m is not None:
            return _substitute(rule.result, m)
    return None


_SUBST = re.compile(r"\$(\$|\d+|\{\d+\}|\(\d+\))")


def _substitute(result: str, m: re.Match) -> str:
    def one(s: re.Match) -> str:
        token = s.group(1)
        if token == "$":
            return "$"
        return m.group(int(token.strip("{}()"))) or ""
    return _SUBST.sub(one, result)


def _regexp(spec: str, name: str, cfg) -> Table:
    return _pattern_table(spec, name, cfg, pcre=False)


def _pcre(spec: str, name: str, cfg) -> Table:
    return _pattern_table(spec, name, cfg, pcre=True)


def _pattern_table(spec: str, name: str, cfg, *, pcre: bool) -> Table:
    path = table_path(name, cfg)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {file}: {e.strerror}") from None
    stack: list[list] = [[]]
    conds: list[_Rule] = []
    for ll in logical_lines(text, file):
        word = ll.text.split(None, 1)[0].lower()
        if word == "endif":
            if not conds:
                raise ConfigError("ignoring ENDIF without matching IF", file=file, line=ll.line)
            body = stack.pop()
            stack[-1].append((conds.pop(), tuple(body)))
            continue
        is_if = word == "if"
        rest = ll.text[2:].lstrip() if is_if else ll.text
        rule, tail = _parse_pattern(rest, file, ll.line, pcre)
        if is_if:
            if tail:
                raise ConfigError(f'text after IF pattern: "{tail}"', file=file, line=ll.line)
            conds.append(rule)
            stack.append([])
            continue
        if not tail:
            raise ConfigError(f'no replacement text: "{ll.text}"', file=file, line=ll.line)
        if rule.negate and _SUBST.search(tail.replace("$$", "")):
            raise ConfigError("$number found in negative match replacement text", file=file, line=ll.line)
        groups = rule.pattern.groups
        for s in _SUBST.finditer(tail):
            if s.group(1) != "$" and int(s.group(1).strip("{}()")) > groups:
                raise ConfigError(f"out of range replacement index \"{s.group(0)}\"", file=file, line=ll.line)
        stack[-1].append(_Rule(rule.pattern, rule.negate, tail, ll.line))
    if conds:
        raise ConfigError(f"IF has no matching ENDIF (line {conds[-1].line})", file=file)
    return RegexpTable(spec, tuple(stack[0]))


def _parse_pattern(text: str, file: str, line: int, pcre: bool) -> tuple[_Rule, str]:
    """``[!]/pattern/flags rest`` -> rule, rest (any non-space delimiter)."""
    negate = text.startswith("!")
    if negate:
        text = text[1:].lstrip()
    if not text or text[0].isspace() or text[0].isalnum():
        raise ConfigError(f'no regexp delimiter: "{text}"', file=file, line=line)
    delim = text[0]
    end = _closing(text, delim)
    if end < 0:
        raise ConfigError(f'unmatched delimiter "{delim}": "{text}"', file=file, line=line)
    source = text[1:end]
    i = end + 1
    # POSIX regcomp() without REG_NEWLINE lets "." match a newline (a folded
    # header is one string with newlines in it); the m flag is REG_NEWLINE.
    flags = re.IGNORECASE if pcre else re.IGNORECASE | re.DOTALL
    anchored = False
    while i < len(text) and not text[i].isspace():
        ch = text[i]
        if ch == "i":
            flags ^= re.IGNORECASE
        elif ch == "m":
            flags ^= re.MULTILINE if pcre else re.MULTILINE | re.DOTALL
        elif pcre and ch == "s":
            flags ^= re.DOTALL
        elif pcre and ch == "x":
            flags ^= re.VERBOSE
        elif pcre and ch == "A":
            anchored = not anchored
        elif pcre and ch in "EX":
            pass                # $ only at the very end; strict escapes: keys have no newline
        elif pcre and ch == "U":
            raise ConfigError("flag U (ungreedy) is not supported", file=file, line=line)
        elif ch == "x":
            raise ConfigError("flag x (basic regular expressions) is not supported", file=file, line=line)
        else:
            raise ConfigError(f'unknown regexp option "{ch}"', file=file, line=line)
        i += 1
    try:
        python = source if pcre else from_posix(source)
        pattern = re.compile(f"\\A(?:{python})" if anchored else python, flags)
    except (re.error, ValueError) as e:
        raise ConfigError(f"regexp {source}: {e}", file=file, line=line) from None
    return _Rule(pattern, negate, None, line), text[i:].strip()


def _closing(text: str, delim: str) -> int:
    """Index of the delimiter ending the pattern; a backslash escapes it."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == delim:
            return i
        i += 1
    return -1


# -- lmdb -------------------------------------------------------------------------------

@dataclass(slots=True)
class LmdbTable:
    """A table compiled by postmap into PATH.lmdb; reopened when replaced."""
    spec: str
    path: Path
    _env: object = field(default=None, repr=False)
    _ident: tuple = field(default=(), repr=False)

    def lookup(self, key: str) -> str | None:
        env = self._current()
        with env.begin() as txn:
            value = txn.get(key.lower().encode("utf-8", "surrogateescape"))
        return None if value is None else bytes(value).decode("utf-8", "surrogateescape")

    def _current(self):
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise ConfigError(f"open database {self.path}: {e.strerror}") from None
        ident = (st.st_dev, st.st_ino, st.st_mtime_ns)
        if self._env is None or ident != self._ident:
            import lmdb  # only lmdb tables need it
            if self._env is not None:
                self._env.close()
            try:
                self._env = lmdb.open(str(self.path), subdir=False, readonly=True, lock=False,
                                      create=False, max_spare_txns=0)
            except lmdb.Error as e:
                raise ConfigError(f"open database {self.path}: {e}") from None
            self._ident = ident
        return self._env

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


def lmdb_file(path: Path) -> Path:
    return path.with_name(path.name + LMDB_SUFFIX)


def _lmdb(spec: str, name: str, cfg) -> Table:
    table = LmdbTable(spec, lmdb_file(table_path(name, cfg)))
    table._current()                 # a missing file is an error at open, as in Postfix
    return table


def write_lmdb(source: Path) -> Path:
    """Compile the texthash-syntax `source` into source.lmdb, replacing it atomically."""
    import lmdb  # only postmap writes tables
    entries = read_text_table(source)
    target = lmdb_file(source)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    size = 1 << 20
    for key, value in entries.items():
        size += 2 * (len(key) + len(value)) + 64
    env = lmdb.open(str(tmp), subdir=False, map_size=size * 2, lock=False, max_dbs=0)
    try:
        with env.begin(write=True) as txn:
            for key, value in entries.items():
                txn.put(key.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape"))
        env.sync(True)
    except BaseException:
        env.close()
        tmp.unlink(missing_ok=True)
        raise
    env.close()
    os.replace(tmp, target)
    sync_directory(target.parent)
    return target


OPENERS: dict[str, Callable[[str, str, object], Table]] = {
    "texthash": _texthash,
    "inline": _inline,
    "static": _static,
    "regexp": _regexp,
    "pcre": _pcre,
    "cidr": lambda spec, name, cfg: read_cidr(spec, table_path(name, cfg)),
    "lmdb": _lmdb,
    "unix": _unix,
}
