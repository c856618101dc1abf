"""table_tool - what postmap(1) and postalias(1) share: their options and what they do.

SYNOPSIS
    tool = Tool("postmap", "c:d:fimnNopq:rsuvw", source=text_source, ...)
    return tool.main(argv, config_dir)

DESCRIPTION
    postmap and postalias take the same options and differ only in the
    source syntax they compile and in how they print an entry. Each
    invocation does one of four things (Postfix: "specify only one of -s
    -q or -d", fatal):

      build (no -q, -d, -s)   compile each [type:]file into file.lmdb
                              (hash: and btree: name the same file, see
                              mailsys.config.tables); with -i, read entries
                              from standard input instead and add them to
                              the existing table (created when missing),
                              without truncating it
      -q key                  print the value of the first table that has
                              key; exit 1 when none has it. -q - reads keys
                              from standard input, prints an entry for each
                              one found, exits 1 when none was found
      -d key                  delete key from every table; exit 0 when at
                              least one had it. -d - reads keys from
                              standard input
      -s                      print every entry of the first table, in the
                              table's order (compiled tables, texthash and
                              inline tables)

    Options that shape a build, an update or a lookup
    (mailsys.config.table_build): -f do not fold keys to lower case; -N
    store keys and values with a terminating null, -n without (the
    default); -r replace a duplicate key silently, -w keep the first
    silently (default: keep the first, with a warning). -p gives a new
    table mode 0644 instead of its source's read permissions, -o leaves a
    table root builds owned by root instead of by its source's owner
    (mailsys.config.table_files). -v is accepted (Postfix's verbose
    logging; mailsys says nothing more), and so are -u and -U (mailsys does
    not check tables for UTF-8).

    postmap only: -F stores the base64 of the files a value names (their
    contents joined by a newline) and decodes values for -q and -s; with
    "-q -", -h makes lookup keys of the headers of a message on standard
    input, -b of its body lines, and -m adds MIME parsing to them
    (mailsys.cli.postmap_keys); -m alone is ignored with Postfix's warning.

    Fatal errors print "PROGRAM: fatal: ..." and exit 1, as Postfix's
    msg_fatal(); so do usage errors, after glibc getopt()'s own complaint
    for a bad option. Once main.cf is read, warnings and fatal errors go
    to the mail log too (mailsys.cli.diag), as Postfix's postmap and
    postalias log them (maillog_client_init() after mail_conf_read()):
    errors found while the options are read (a bad option, "specify only
    one of ...") are on standard error only, those found after it (no
    file named, -b/-h/-m without "-q -", a table that cannot be opened)
    are logged as well.

    A table type that is not compiled cannot be built or changed, in
    Postfix's words (src/global/dynamicmaps.c, the dict_*.c open
    functions): "unsupported dictionary type: regexp does not support
    bulk-mode creation." for a build, "regexp:NAME map requires O_RDONLY
    access mode" for -d, and for a type mailsys does not know at all
    "unsupported dictionary type: foo. Is the postfix-foo package
    installed?" (Debian's Postfix, which has dynamic maps).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import getopt
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from mailsys.cli.diag import Diag
from mailsys.cli.getopt_errors import complaint
from mailsys.cli.postmap_keys import message_keys
from mailsys.config import load, table_build, table_files
from mailsys.config.file_values import read_files
from mailsys.config.loader import Config
from mailsys.config.table_build import BuildOptions
from mailsys.config.tables import (COMPILED_TYPES, OPENERS, DictTable, LmdbTable, Table,
                                   lmdb_file, open_table)
from mailsys.errors import ConfigError, MailsysError
from mailsys.frozen import frozen

__all__ = ["Tool", "Invocation", "Fatal", "DEFAULT_TYPE", "FILE_TYPES", "absolute_spec",
           "config_of"]

DEFAULT_TYPE = "lmdb"
FILE_TYPES = ("texthash", "regexp", "pcre", "cidr") + COMPILED_TYPES

Warn = Callable[[str], None]
# A source parser: (text, file name for messages, warn) -> (key, value, line) records.
Source = Callable[[str, str, Warn], Iterable[tuple[str, str, int]]]
# Options that set one Invocation field: option -> (field, value it sets).
SWITCHES = {"-i": ("incremental", True), "-p": ("save_perm", False), "-o": ("as_owner", False),
            "-F": ("files", True), "-h": ("headers", True), "-b": ("body", True)}


class Fatal(MailsysError):
    """A fatal error: "PROGRAM: fatal: TEXT", exit status 1."""


@frozen
class Invocation:
    """One command line, parsed."""

    mode: str                           # "build", "query", "delete" or "sequence"
    key: str | None
    specs: tuple[str, ...]
    opts: BuildOptions = BuildOptions()
    incremental: bool = False
    save_perm: bool = True
    as_owner: bool = True
    config_dir: Path | None = None
    files: bool = False                 # -F: values are base64 file contents
    headers: bool = False               # -h: -q - looks up a message's headers
    body: bool = False                  # -b: ... and its body lines
    mime: bool = False                  # -m with -h or -b: MIME parsing


@frozen
class Tool:
    program: str
    optstring: str                      # getopt letters, Postfix's for this program
    usage: str                          # after "usage: "
    source: Source                      # the source syntax builds read
    entry_format: str = "{key}\t{value}"   # one line of -q - and -s output
    # What every build and update adds last (postalias: its signature entries).
    finish: Callable[[dict[bytes, bytes], BuildOptions, Config], None] | None = None
    # Where warnings go: set by main() for one run; None: standard error only.
    diag: Diag | None = None

    # --- the command line -----------------------------------------------------

    def parse(self, argv: list[str]) -> tuple[Invocation, bool]:
        """The command line, and whether -m was given; the checks Postfix
        makes after reading main.cf are check()'s."""
        # POSIX getopt, as Postfix's GETOPT(): options stop at the first file.
        try:
            opts, specs = getopt.getopt(argv, self.optstring)
        except getopt.GetoptError as e:
            line = complaint(e)
            if line is not None:
                print(f"{self.program}: {line}", file=sys.stderr)
            raise Fatal(self.usage_line) from None
        mode, key = "build", None
        fold, duplicates, nulls = True, table_build.WARN, False
        flags = {name: not setting for name, setting in SWITCHES.values()}
        config_dir, mime = None, False
        for flag, value in opts:
            if flag in ("-q", "-d"):
                if mode != "build":
                    raise Fatal("specify only one of -s -q or -d")
                mode, key = ("query" if flag == "-q" else "delete"), value
            elif flag == "-s":
                if mode in ("query", "delete"):
                    raise Fatal("specify only one of -s or -q or -d")     # sic, Postfix's words
                mode = "sequence"
            elif flag == "-c":
                config_dir = Path(value).absolute()
            elif flag == "-f":
                fold = False
            elif flag in ("-N", "-n"):
                nulls = flag == "-N"
            elif flag == "-r":
                duplicates = table_build.REPLACE
            elif flag == "-w":
                duplicates = table_build.IGNORE
            elif flag in SWITCHES:
                name, setting = SWITCHES[flag]
                flags[name] = setting
            elif flag == "-m":
                mime = True
        message = flags["headers"] or flags["body"]
        return Invocation(mode, key, tuple(_with_type(s) for s in specs),
                          BuildOptions(fold, duplicates, nulls), config_dir=config_dir,
                          mime=mime and message, **flags), mime

    @property
    def usage_line(self) -> str:
        return f"usage: {self.program} {self.usage}"

    def check(self, inv: Invocation, mime: bool) -> None:
        """What Postfix checks after main.cf is read (src/postmap/postmap.c
        main()), so that its complaints are logged too."""
        message = inv.headers or inv.body
        if (message or mime) and not (inv.mode == "query" and inv.key == "-"):
            raise Fatal('specify -b -h or -m only with "-q -"')
        if mime and not message:
            self.warn("ignoring -m option without -b or -h")
        if not inv.specs and inv.mode != "sequence":
            raise Fatal(self.usage_line)

    def main(self, argv: list[str], config_dir: Path) -> int:
        diag = Diag(self.program)
        tool = dataclasses.replace(self, diag=diag)
        try:
            inv, mime = tool.parse(argv)
            cfg = config_of(inv.config_dir or config_dir)
            diag.cfg = cfg
            tool.check(inv, mime)
            return tool.run(inv, cfg)
        except (Fatal, ConfigError) as e:
            return diag.fatal(str(e), 1)

    # --- what it does ------------------------------------------------------------

    def warn(self, text: str) -> None:
        if self.diag is not None:
            self.diag.warn(text)
        else:
            print(f"{self.program}: warning: {text}", file=sys.stderr)

    def run(self, inv: Invocation, cfg: Config) -> int:
        if inv.mode == "build":
            for spec in inv.specs:
                self.build(spec, inv, cfg)
            return 0
        if inv.mode == "delete":
            keys = list(_stdin_keys()) if inv.key == "-" else [inv.key]
            return 0 if self.delete(inv.specs, keys, inv.opts) else 1
        if inv.mode == "sequence":
            if not inv.specs:
                return 1                  # Postfix: nothing to list, no message
            for key, value in self.sequence(inv.specs[0], cfg):
                if inv.files:
                    value = self._decoded(inv.specs[0], key, value)
                    if value is None:
                        continue
                print(self.entry_format.format(key=key, value=value))
            return 0
        return self.query(inv, cfg)

    def _compiled(self, spec: str, change: bool = False) -> tuple[Path, str]:
        """The source file of a compiled table, and the table's name in
        warnings; Postfix's fatal error for a table it cannot build (change
        False) or change (-d)."""
        kind, _, name = spec.partition(":")
        if kind not in COMPILED_TYPES:
            if kind not in OPENERS:
                if change:
                    raise Fatal(f"unsupported dictionary type: {kind}")    # dict_open.c
                raise Fatal(f"unsupported dictionary type: {kind}. "       # dynamicmaps.c
                            f"Is the postfix-{kind} package installed?")
            if not change:
                raise Fatal(f"unsupported dictionary type: {kind} does not support "
                            "bulk-mode creation.")                         # dynamicmaps.c
            if kind == "static":
                raise Fatal(f"table {spec}: delete operation is not supported")  # dict.c
            # dict_thash.c, dict_regexp.c and the other read-only tables.
            raise Fatal(f"{spec} map requires O_RDONLY access mode")
        # Postfix names an lmdb table "lmdb:NAME" in its warnings (a hash one
        # "NAME.db"); mailsys writes NAME.lmdb for all three.
        return Path(name), (spec if kind == "lmdb" else str(lmdb_file(Path(name))))

    def build(self, spec: str, inv: Invocation, cfg: Config) -> Path:
        source, table = self._compiled(spec)
        target = lmdb_file(source)
        if inv.incremental:
            text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
            records = self.source(text, "stdin", self.warn)     # warns as it goes, as Postfix
            if not target.exists():
                table_files.write_raw(target, {}, table_files.FileMode.of_source(
                    _stat_stdin(), save_perm=inv.save_perm, as_owner=inv.as_owner))
            with table_files.updating(target) as raw:
                self._add_all(raw, self._values(records, inv, "stdin"), inv.opts, table, cfg)
            return target
        try:
            st = source.stat()
            text = source.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as e:
            raise Fatal(f"open {source}: {e.strerror}") from None
        raw: dict[bytes, bytes] = {}
        records = self.source(text, str(source), self.warn)
        self._add_all(raw, self._values(records, inv, str(source)), inv.opts, table, cfg)
        like = table_files.FileMode.of_source(st, save_perm=inv.save_perm,
                                              as_owner=inv.as_owner)
        return table_files.write_raw(target, raw, like)

    def _values(self, records: Iterable[tuple[str, str, int]], inv: Invocation,
                file: str) -> Iterator[tuple[str, str]]:
        """(key, value) to store: with -F, the base64 of the files a value names."""
        for key, value, line in records:
            if not inv.files:
                yield key, value
                continue
            try:
                yield key, _files_base64(value)
            except OSError as e:
                self.warn(f"{file}, line {line}: open {e.filename}: {e.strerror}: "
                          "skipping this entry")

    def _add_all(self, raw: dict[bytes, bytes], records: Iterable[tuple[str, str]],
                 opts: BuildOptions, table: str, cfg: Config) -> None:
        for key, value in records:
            table_build.add(raw, key, value, opts, table=table, warn=self.warn)
        if self.finish is not None:
            self.finish(raw, opts, cfg)

    def delete(self, specs: Iterable[str], keys: list[str], opts: BuildOptions) -> bool:
        found = False
        for spec in specs:
            source, _ = self._compiled(spec, change=True)
            with table_files.updating(lmdb_file(source)) as raw:
                for key in keys:
                    found |= table_build.delete(raw, key, opts)
        return found

    def sequence(self, spec: str, cfg: Config) -> Iterator[tuple[str, str]]:
        kind, _, name = spec.partition(":")
        if kind in COMPILED_TYPES:
            return table_build.entries(table_files.read_raw(lmdb_file(Path(name))))
        table = self._open(spec, cfg)
        if isinstance(table, DictTable):
            return iter(table.entries.items())
        raise Fatal(f"table {spec}: sequence operation is not supported")

    def _open(self, spec: str, cfg: Config) -> Table:
        """open_table() on spec, whose file its warnings and errors name as
        the command line does: Postfix opens the name as given, so a
        relative one stays relative ("t, line 3: ...", "open database
        t.db"; seen live with Postfix 3.7.11)."""
        full = absolute_spec(spec)
        given, absolute = spec.partition(":")[2], full.partition(":")[2]
        if given == absolute:
            return open_table(full, cfg, self.warn)

        def as_given(text: str) -> str:
            return text.replace(absolute, given)
        try:
            return open_table(full, cfg, lambda text: self.warn(as_given(text)))
        except ConfigError as e:
            raise Fatal(as_given(str(e))) from None

    def query(self, inv: Invocation, cfg: Config) -> int:
        tables = []
        for spec in inv.specs:
            table = self._open(spec, cfg)
            if isinstance(table, LmdbTable):
                table.fold = inv.opts.fold
            tables.append(table)

        def lookup(key: str) -> str | None:
            for spec, table in zip(inv.specs, tables):
                value = table.lookup(key)
                if value is not None:
                    return self._decoded(spec, key, value) if inv.files else value
            return None

        if inv.key != "-":
            value = lookup(inv.key)
            if value is None:
                return 1
            print(value)
            return 0
        keys = _stdin_keys()
        if inv.headers or inv.body:
            keys = message_keys(keys, headers=inv.headers, body=inv.body, mime=inv.mime)
        found = False
        for key in keys:
            value = lookup(key)
            if value is not None:
                print(self.entry_format.format(key=key, value=value))
                found = True
        return 0 if found else 1

    def _decoded(self, spec: str, key: str, value: str) -> str | None:
        """A -F value as the file contents it holds; None (warned) when it is no base64."""
        try:
            return table_build.decode(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            self.warn(f"table {spec}: key {key}: malformed BASE64 value: {value}")
            return None


def _files_base64(value: str) -> str:
    """postmap -F: the named files' contents, a newline between two, in base64."""
    return base64.b64encode(read_files(value)).decode("ascii")


def _stdin_keys() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\n")


def _stat_stdin() -> os.stat_result:
    return os.fstat(sys.stdin.fileno())


def _with_type(spec: str) -> str:
    """``[type:]file`` with the default type: what messages name."""
    return spec if ":" in spec else f"{DEFAULT_TYPE}:{spec}"


def absolute_spec(spec: str) -> str:
    """``type:file`` with an absolute file name: what open_table() is given
    (it takes relative names from the configuration's parent directory)."""
    kind, _, name = _with_type(spec).partition(":")
    if kind in FILE_TYPES and name:
        name = str(Path(name).absolute())
    return f"{kind}:{name}"


def config_of(config_dir: Path) -> Config:
    """The configuration when there is one; postmap works without it too."""
    if (config_dir / "main.cf").exists():
        return load(config_dir)
    return Config(config_dir, {})
