"""tables - Postfix-style lookup tables: texthash, inline, static, regexp, pcre, cidr, lmdb.

    table = open_table("texthash:/etc/mailsys/virtual", cfg)
    table.lookup("alice@example.com")  -> "example.com/alice/" or None

A table spec is ``type:name`` as in Postfix (postconf(5), "lookup tables"):

    texthash:/path          ``key value`` lines, read at open (comments and
                            continuation lines as in main.cf); first of a
                            duplicated key wins
    lmdb:/path              /path.lmdb, compiled from a texthash-syntax
                            source by ``mailsys postmap lmdb:/path``, or
                            from an aliases(5) source by ``mailsys
                            postalias lmdb:/path`` (or newaliases)
    hash:/path, btree:/path the same /path.lmdb: Berkeley DB tables do not
                            exist in mailsys, and a main.cf moved from
                            Postfix says ``alias_maps = hash:/etc/aliases``;
                            postmap, postalias and newaliases given
                            hash:/path write /path.lmdb, and a table never
                            built is an error that says how to build it
    inline:{ k=v, { k2 = v with spaces } }
    static:value            every key gives value (``static:{ a b }`` too)
    regexp:/path            regexp_table(5): ``/pattern/flags result``,
                            ``!/pattern/ result``, if/endif, $1 substitution;
                            POSIX regular expressions (regexp_table.py)
    cidr:/path              cidr_table(5): ``network/prefix result`` rules for
                            client addresses (cidr_table.py)
    pcre:/path              pcre_table(5): the same file syntax, the patterns
                            as Python's re reads them (Perl's syntax, mostly)
    unix:passwd.byname      the password file: ``name:x:uid:gid:gecos:home:shell``
    unix:group.byname       the group file: ``name:x:gid:member,member``

Keys of texthash, lmdb and inline tables are case-insensitive, as Postfix
folds them to lower case when it builds a table; regexp patterns are
case-insensitive unless the ``i`` flag turns that off. A relative path is
taken from the parent of the configuration directory (like Config.path).
An unknown type, a malformed inline table or a file that cannot be read is
a ConfigError; a bad line in a texthash, regexp, pcre or cidr file is
skipped with Postfix's warning naming the file and line, logged by the
process that opened the table (log_warning), as Postfix's dict modules
do.

The lmdb module is imported only when an lmdb table is opened, so the rest of
mailsys.config stays free of it. An lmdb table file is only ever replaced
whole (postmap writes a new file and renames it into place), so readers open
it read-only without a lock file, and reopen it when it has been replaced.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from mailsys.config import table_build
from mailsys.config.cidr_table import read_cidr
from mailsys.config.lines import logical_lines
from mailsys.config.regexp_table import Warn, read_regexp
from mailsys.config.values import BadValue, split_list, strip_braces
from mailsys.errors import ConfigError
from mailsys.frozen import frozen

LMDB_SUFFIX = ".lmdb"


class Table(Protocol):
    spec: str

    def lookup(self, key: str) -> str | None: ...


def log_warning(text: str) -> None:
    """Where a table's warnings go by default: the log of the process that
    opened it, as Postfix's msg_warn() (mail.log once the process has
    configured logging)."""
    import structlog
    structlog.get_logger().warning(text)


def open_table(spec: str, cfg, warn: Warn = log_warning) -> Table:
    """Open the table `spec` (``type:name``); relative paths use cfg.config_dir.parent.

    A bad line in a table read line by line is skipped with a warning to
    warn, in Postfix's words; a table that cannot be opened at all is a
    ConfigError.
    """
    kind, colon, name = spec.partition(":")
    if not colon or not kind or not name:
        raise ConfigError(f'open dictionary: expecting "type:name" form instead of "{spec}"')
    opener = OPENERS.get(kind)
    if opener is None:
        raise ConfigError(f"unsupported dictionary type: {kind}")   # src/util/dict_open.c
    return opener(spec, name, cfg, warn)


def table_path(name: str, cfg) -> Path:
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.config_dir).absolute().parent / p


# -- key -> value tables -----------------------------------------------------------

@frozen
class DictTable:
    """A table held in memory: texthash and inline."""
    spec: str
    entries: dict[str, str]

    def lookup(self, key: str) -> str | None:
        return self.entries.get(key.lower())


def _text_lines(text: str, file: str, warn: Warn, compiling: bool
                ) -> Iterator[tuple[str, str, int]]:
    for ll in logical_lines(text, file):
        parts = ll.text.split(None, 1)
        if len(parts) < 2:
            warn(f"{file}, line {ll.line}: expected format: key whitespace value"
                 + ("" if compiling else " -- ignoring this line"))
            continue
        yield parts[0], parts[1].strip(), ll.line


def text_records(text: str, file: str, warn: Warn = log_warning
                 ) -> Iterator[tuple[str, str, int]]:
    """(key, value, line number) of each line of postmap source text, in
    order; a line without a value is skipped with postmap's warning."""
    return _text_lines(text, file, warn, True)


def read_text_table(path: Path, warn: Warn = log_warning, *, compiling: bool = False
                    ) -> dict[str, str]:
    """Entries of a texthash-syntax file (also postmap's source format).

    A line without a value is skipped and of a duplicated key the first
    wins, each with Postfix's warning: texthash's words, or postmap's when
    compiling the file into a database.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        # A texthash table is a "database" to Postfix (src/util/dict_thash.c),
        # postmap's source a plain file (src/postmap/postmap.c).
        raise ConfigError(f"open {'' if compiling else 'database '}{file}: {e.strerror}") from None
    entries: dict[str, str] = {}
    for key, value, line in _text_lines(text, file, warn, compiling):
        key = key.lower()
        if key in entries:
            warn(f'{file}{LMDB_SUFFIX}: duplicate entry: "{key}"' if compiling else
                 f'{file}, line {line}: duplicate entry: "{key}"')
            continue
        entries[key] = value
    return entries


def _texthash(spec: str, name: str, cfg, warn: Warn) -> Table:
    return DictTable(spec, read_text_table(table_path(name, cfg), warn))


def _inline(spec: str, name: str, cfg, warn: Warn) -> Table:
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


@frozen
class StaticTable:
    spec: str
    value: str

    def lookup(self, key: str) -> str | None:
        return self.value


def _static(spec: str, name: str, cfg, warn: Warn) -> Table:
    return StaticTable(spec, strip_braces(name))


# -- unix -------------------------------------------------------------------------------

@frozen
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


def _unix(spec: str, name: str, cfg, warn: Warn) -> Table:
    if name not in ("passwd.byname", "group.byname"):
        raise ConfigError(f"unknown table: {spec} (expected unix:passwd.byname or unix:group.byname)")
    return UnixTable(spec, name)


# -- regexp and pcre: regexp_table.py ---------------------------------------------

def _regexp(spec: str, name: str, cfg, warn: Warn) -> Table:
    return _patterns(spec, name, cfg, warn, pcre=False)


def _pcre(spec: str, name: str, cfg, warn: Warn) -> Table:
    return _patterns(spec, name, cfg, warn, pcre=True)


def _patterns(spec: str, name: str, cfg, warn: Warn, *, pcre: bool) -> Table:
    """A regexp or pcre file, or (Postfix 3.7) the rules inline, each in
    braces: ``regexp:{ {/^[^A-Z]/ Bogus}, {/x/ y} }``."""
    if not name.startswith("{"):
        return read_regexp(spec, table_path(name, cfg), warn, pcre=pcre)
    if not name.endswith("}"):
        raise ConfigError(f'bad inline table syntax: "{spec}": expected '
                          f'{spec.partition(":")[0]}:{{ {{rule}}, ... }}')
    try:
        rules = split_list(name[1:-1])
    except BadValue as e:
        raise ConfigError(f"{e} in {spec}") from None
    return read_regexp(spec, None, warn, pcre=pcre, rules=rules)


# -- lmdb -------------------------------------------------------------------------------

@dataclass(slots=True)
class LmdbTable:
    """A table compiled by postmap into PATH.lmdb; reopened when replaced."""
    spec: str
    path: Path
    _env: object = field(default=None, repr=False)
    _ident: tuple = field(default=(), repr=False)
    fold: bool = True                # False: postmap -f queries with the key as given

    def lookup(self, key: str) -> str | None:
        env = self._current()
        with env.begin() as txn:
            # A table built with postmap -N holds its keys with a terminating null.
            return table_build.get(txn.get, table_build.encode(key.lower() if self.fold else key))

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


def _lmdb(spec: str, name: str, cfg, warn: Warn) -> Table:
    table = LmdbTable(spec, lmdb_file(table_path(name, cfg)))
    table._current()                 # a missing file is an error at open, as in Postfix
    return table


def _hash(spec: str, name: str, cfg, warn: Warn = log_warning) -> Table:
    """hash:/path and btree:/path read the lmdb table built from /path."""
    path = table_path(name, cfg)
    table = LmdbTable(spec, lmdb_file(path))
    if not table.path.exists():
        raise ConfigError(f"open database {table.path}: No such file or directory ({spec} is "
                          f"read from {table.path}: build it with \"mailsys postmap {spec}\", "
                          f"or \"mailsys postalias {spec}\" for an aliases file)")
    table._current()
    return table


# Table types that name a file compiled into FILE.lmdb.
COMPILED_TYPES = ("lmdb", "hash", "btree")


def write_lmdb(source: Path, warn: Warn = log_warning,
               entries: dict[str, str] | None = None) -> Path:
    """Compile `source` into source.lmdb, replacing it atomically: its texthash
    entries (bad lines skipped with warn), or the `entries` given (postalias
    parses the aliases syntax). postmap's options: mailsys.cli.table_tool."""
    from mailsys.config import table_files
    if entries is None:
        entries = read_text_table(source, warn, compiling=True)
    raw = {table_build.encode(k): table_build.encode(v) for k, v in entries.items()}
    try:
        like = table_files.FileMode.of_source(source.stat())
    except OSError:
        like = table_files.FileMode()
    return table_files.write_raw(lmdb_file(source), raw, like)


OPENERS: dict[str, Callable[[str, str, object, Warn], Table]] = {
    "texthash": _texthash,
    "inline": _inline,
    "static": _static,
    "regexp": _regexp,
    "pcre": _pcre,
    "cidr": lambda spec, name, cfg, warn: read_cidr(spec, table_path(name, cfg), warn),
    "lmdb": _lmdb,
    "hash": _hash,
    "btree": _hash,
    "unix": _unix,
}
