"""postalias - compile and query alias tables (Postfix postalias(1), newaliases(1)).

SYNOPSIS
    mailsys postalias [-c dir] [type:]file ...
    mailsys postalias [-c dir] -q key type:name ...
    mailsys newaliases [-c dir]

DESCRIPTION
    postalias compiles each aliases(5) source file (``name: value, ...``,
    mailsys.config.aliases) into file.lmdb, written beside the old table
    and renamed over it as postmap does. The type defaults to lmdb; hash
    and btree, what a main.cf moved from Postfix names, write the same
    file.lmdb, which is what ``alias_maps = hash:file`` reads. A line
    without ``name:`` or a duplicated name is skipped with a warning on
    standard error, as Postfix's postalias does. Postfix also stores an
    entry ``@`` (sendmail's sign that the table is complete); no reader of
    mailsys needs it, so it is not written.

    -q key looks key up as postmap -q does (exit 1 when no table has it;
    ``-q -`` reads keys from standard input).

    newaliases compiles every table in $alias_database (Postfix's
    newaliases, the same as ``sendmail -bi``); relative file names are
    taken from the parent of the configuration directory, as every table
    a daemon opens. postalias takes relative file names from the current
    directory.
"""

from __future__ import annotations

import getopt
import sys
from pathlib import Path

from mailsys.cli.postmap import _config, absolute_spec
from mailsys.cli.postmap import main as postmap_main
from mailsys.config.aliases import read_aliases
from mailsys.config.tables import COMPILED_TYPES, lmdb_file, table_path, write_lmdb
from mailsys.errors import ConfigError, UsageError

USAGE = "usage: postalias [-c config_dir] [-q key] [type:]file ..."


def main(argv: list[str], config_dir: Path, command: str = "postalias") -> int:
    if command == "newaliases":
        return newaliases(argv, config_dir)
    try:
        opts, specs = getopt.gnu_getopt(argv, "c:q:")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. {USAGE}") from None
    if any(flag == "-q" for flag, _ in opts):
        return postmap_main(argv, config_dir, command)
    if not specs:
        raise UsageError(USAGE)
    for spec in specs:
        compile_aliases(absolute_spec(spec), "postalias")
    return 0


def newaliases(argv: list[str], config_dir: Path) -> int:
    try:
        opts, rest = getopt.gnu_getopt(argv, "c:")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. usage: newaliases [-c config_dir]") from None
    if rest:
        raise UsageError("usage: newaliases [-c config_dir]")
    for _, value in opts:
        config_dir = Path(value).absolute()
    cfg = _config(config_dir)
    for spec in cfg.alias_database:
        kind, _, name = spec.partition(":")
        compile_aliases(f"{kind}:{table_path(name, cfg)}", "newaliases")
    return 0


def compile_aliases(spec: str, program: str) -> Path:
    kind, _, name = spec.partition(":")
    if kind not in COMPILED_TYPES:
        raise ConfigError(f"cannot create {kind}:{name}: only lmdb (hash, btree) alias tables "
                          f"are compiled")
    source = Path(name)
    entries, warnings = read_aliases(source, str(lmdb_file(source)))
    for warning in warnings:
        print(f"{program}: warning: {warning}", file=sys.stderr)
    return write_lmdb(source, entries=entries)
