"""postalias - compile, update and query alias tables (Postfix postalias(1), newaliases(1)).

SYNOPSIS
    mailsys postalias [-finNoprvw] [-c dir] [type:]file ...
    mailsys postalias [-fnN] [-c dir] -q key|- type:name ...
    mailsys postalias [-fnN] [-c dir] -d key|- type:name ...
    mailsys postalias [-c dir] -s type:name
    mailsys newaliases [-c dir]

DESCRIPTION
    postalias compiles each aliases(5) source file (``name: value, ...``,
    mailsys.config.aliases) into file.lmdb, written beside the old table
    and renamed over it as postmap does. The type defaults to lmdb; hash
    and btree, what a main.cf moved from Postfix names, write the same
    file.lmdb, which is what ``alias_maps = hash:file`` reads. A line
    without ``name:`` or a duplicated name is skipped with a warning on
    standard error, as Postfix's postalias does. As Postfix's (on Linux),
    every build and update ends with three entries of its own: ``@: @``,
    sendmail's sign that the table is complete, and NIS's
    ``YP_LAST_MODIFIED`` (the time) and ``YP_MASTER_NAME`` ($myhostname).
    With -i the entries come from standard input and are added to the
    table.

    -q key looks key up as postmap -q does (exit 1 when no table has it);
    ``-q -`` reads keys from standard input and prints ``key:<TAB>value``
    for each one found, and so does -s for every entry of a table. -d key
    deletes key. The options, exit statuses and messages are Postfix's:
    mailsys.cli.table_tool.

    newaliases compiles every table in $alias_database (Postfix's
    newaliases, the same as ``sendmail -bi``); relative file names are
    taken from the parent of the configuration directory, as every table
    a daemon opens. postalias takes relative file names from the current
    directory.
"""

from __future__ import annotations

import dataclasses
import getopt
import time
from pathlib import Path

from mailsys.cli.table_tool import Invocation, Tool, config_of
from mailsys.config.aliases import alias_records
from mailsys.config.loader import Config
from mailsys.config.table_build import REPLACE, BuildOptions, add
from mailsys.config.tables import table_path
from mailsys.errors import UsageError

def signature(raw: dict[bytes, bytes], opts: BuildOptions, cfg: Config) -> None:
    """What Postfix's postalias adds to every table it builds or updates:
    sendmail's "@: @" (the table is complete), and NIS's time stamp and
    master name, whose keys keep their case and never end in a null."""
    replace = dataclasses.replace(opts, duplicates=REPLACE)
    add(raw, "@", "@", replace, table="", warn=_never)
    exact = dataclasses.replace(replace, fold=False, nulls=False)
    add(raw, "YP_LAST_MODIFIED", "%010d" % int(time.time()), exact, table="", warn=_never)
    add(raw, "YP_MASTER_NAME", str(cfg.myhostname), exact, table="", warn=_never)


def _never(text: str) -> None:
    raise AssertionError(text)          # a replacing add() never warns


TOOL = Tool("postalias", "Nc:d:finopq:rsuvw",
            "[-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...",
            source=alias_records, entry_format="{key}:\t{value}", finish=signature)


def main(argv: list[str], config_dir: Path, command: str = "postalias") -> int:
    if command == "newaliases":
        return newaliases(argv, config_dir)
    return TOOL.main(argv, config_dir)


def newaliases(argv: list[str], config_dir: Path) -> int:
    try:
        opts, rest = getopt.gnu_getopt(argv, "c:")
    except getopt.GetoptError as e:
        raise UsageError(f"{e}. usage: newaliases [-c config_dir]") from None
    if rest:
        raise UsageError("usage: newaliases [-c config_dir]")
    for _, value in opts:
        config_dir = Path(value).absolute()
    cfg = config_of(config_dir)
    tool = dataclasses.replace(TOOL, program="newaliases")
    for spec in cfg.alias_database:
        kind, _, name = spec.partition(":")
        tool.build(f"{kind}:{table_path(name, cfg)}", Invocation("build", None, ()), cfg)
    return 0
