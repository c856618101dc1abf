"""postmap - compile and query lookup tables (Postfix postmap(1)).

SYNOPSIS
    mailsys postmap [-c dir] [type:]file ...
    mailsys postmap [-c dir] -q key type:name ...
    mailsys postmap [-c dir] -q - type:name ...

DESCRIPTION
    Without -q, compiles each texthash-syntax source file (``key value``
    lines, comments and continuation lines as in main.cf) into file.lmdb,
    the form ``lmdb:file`` tables are read from. The new table is written
    beside the old one and renamed over it, so a daemon reading the table
    sees either the old or the new one, never a half-written file. The type
    defaults to lmdb; hash and btree (the types a main.cf from Postfix
    names) write the same file.lmdb, which is what hash:file reads; other
    types are read as they are and need no compiling.

    -q key looks key up in each table in turn (any type: texthash, lmdb,
    inline, static, regexp), prints the first value found and exits 0, or
    exits 1 when no table has it, as postmap does. ``-q -`` reads keys from
    standard input and prints ``key value`` for each one found. A bad line
    in a table is skipped with a warning on standard error
    ("postmap: warning: /etc/x, line 2: ..."), as Postfix's postmap does.

    Relative file names are taken from the current directory.
"""

from __future__ import annotations

import getopt
import sys
from pathlib import Path

from mailsys.config import load
from mailsys.config.loader import Config
from mailsys.config.tables import COMPILED_TYPES, log_warning, open_table, write_lmdb
from mailsys.errors import ConfigError, UsageError

USAGE = "usage: postmap [-c config_dir] [-q key] [type:]file ..."
FILE_TYPES = ("texthash", "regexp", "pcre", "cidr") + COMPILED_TYPES
DEFAULT_TYPE = "lmdb"


def main(argv: list[str], config_dir: Path, command: str = "postmap") -> int:
    try:
        opts, specs = getopt.gnu_getopt(argv, "c:q:")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. {USAGE}") from None
    query = None
    for flag, value in opts:
        if flag == "-c":
            config_dir = Path(value).absolute()
        elif flag == "-q":
            query = value
    if not specs:
        raise UsageError(USAGE)
    specs = [absolute_spec(s) for s in specs]

    def warn(text: str) -> None:
        print(f"{command}: warning: {text}", file=sys.stderr)
    if query is None:
        for spec in specs:
            compile_table(spec, warn)
        return 0
    cfg = _config(config_dir)
    tables = [open_table(spec, cfg, warn) for spec in specs]
    if query == "-":
        found = False
        for line in sys.stdin:
            key = line.strip()
            value = _lookup(tables, key) if key else None
            if value is not None:
                print(f"{key}\t{value}")
                found = True
        return 0 if found else 1
    value = _lookup(tables, query)
    if value is None:
        return 1
    print(value)
    return 0


def absolute_spec(spec: str) -> str:
    """``[type:]file`` with the default type and an absolute file name."""
    kind, colon, name = spec.partition(":")
    if not colon:
        kind, name = DEFAULT_TYPE, spec
    if kind in FILE_TYPES and name:
        name = str(Path(name).absolute())
    return f"{kind}:{name}"


def compile_table(spec: str, warn=log_warning) -> Path:
    kind, _, name = spec.partition(":")
    if kind not in COMPILED_TYPES:
        raise ConfigError(f"cannot create {kind}:{name}: only lmdb tables are compiled "
                          f"({kind} tables are read as they are)")
    return write_lmdb(Path(name), warn)


def _lookup(tables, key: str) -> str | None:
    for table in tables:
        value = table.lookup(key)
        if value is not None:
            return value
    return None


def _config(config_dir: Path) -> Config:
    """The configuration when there is one; postmap works without it too."""
    if (config_dir / "main.cf").exists():
        return load(config_dir)
    return Config(config_dir, {})
