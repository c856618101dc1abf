"""postmap - compile, update and query lookup tables (Postfix postmap(1)).

SYNOPSIS
    mailsys postmap [-fFinNoprvw] [-c dir] [type:]file ...
    mailsys postmap [-fFnN] [-c dir] -q key|- type:name ...
    mailsys postmap [-bh] [-c dir] -q - type:name ...
    mailsys postmap [-fnN] [-c dir] -d key|- type:name ...
    mailsys postmap [-c dir] -s type:name

DESCRIPTION
    Without -q, -d or -s, compiles each texthash-syntax source file (``key
    value`` lines, comments and continuation lines as in main.cf) into
    file.lmdb, the form ``lmdb:file`` tables are read from. The new table
    is written beside the old one and renamed over it, so a daemon reading
    the table sees either the old or the new one, never a half-written
    file. The type defaults to lmdb; hash and btree (the types a main.cf
    from Postfix names) write the same file.lmdb, which is what hash:file
    reads; other types are read as they are and need no compiling. With
    -i the entries come from standard input and are added to the table.

    -q key looks key up in each table in turn (any type: texthash, lmdb,
    inline, static, regexp), prints the first value found and exits 0, or
    exits 1 when no table has it, as postmap does. ``-q -`` reads keys from
    standard input and prints ``key<TAB>value`` for each one found. -d key
    deletes key from each table; -s lists the entries of a table as
    ``key<TAB>value`` lines. A bad line in a table is skipped with a
    warning on standard error ("postmap: warning: /etc/x, line 2: ..."), as
    Postfix's postmap does.

    -F stores, instead of a value, the base64 of the files it names
    (contents joined by a newline) and decodes values for -q and -s. With
    ``-q -``, -h looks up each header of a message read from standard input
    (a folded header is one key with its newlines), -b each body line, and
    -m parses MIME for them: attachment and attached-message headers become
    header keys and no body keys (mailsys.cli.postmap_keys).

    The options, exit statuses and messages are Postfix's: mailsys.cli.
    table_tool. -u and -U are accepted and change nothing (mailsys does not
    check tables for UTF-8).

    Relative file names are taken from the current directory.
"""

from __future__ import annotations

from pathlib import Path

from mailsys.cli.table_tool import Tool
from mailsys.config.tables import text_records

TOOL = Tool("postmap", "bc:d:fFhimnNopq:rsuUvw",
            "[-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...",
            source=text_records)


def main(argv: list[str], config_dir: Path, command: str = "postmap") -> int:
    return TOOL.main(argv, config_dir)
