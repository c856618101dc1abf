"""aliases - the aliases(5) file syntax: ``name: value, value, ...``.

SYNOPSIS
    entries, warnings = read_aliases(path)        # {name: value} for postalias
    split_alias_value('"|/usr/bin/prog -x", bob, :include:/etc/list')
        -> ['|/usr/bin/prog -x', 'bob', ':include:/etc/list']

DESCRIPTION
    The source that ``mailsys postalias`` and ``mailsys newaliases`` compile
    into an lmdb table, read as Postfix's postalias(1) reads it:

      * logical lines as in main.cf (mailsys.config.lines): ``#`` comments,
        blank lines ignored, a line starting with whitespace continues the
        previous one (the pieces joined with one space);
      * ``name: value``: the name is everything before the first ``:``, or a
        quoted string (``"quoted name": bob``, stored without its quotes);
        it is stored in lower case, as Postfix folds keys;
      * a line without ``name:`` (or with an empty name) is skipped with
        postalias's warning ``need name:value pair``; of a duplicated name
        the first entry is kept, with ``FILE.lmdb: duplicate entry: "name"``;
      * the value is kept as written (outer whitespace removed): it is split
        into its elements only when local delivery expands it.

    split_alias_value splits a value (or a line of an :include: file) into
    elements: commas and whitespace separate them except inside double
    quotes, which are removed (``"|cmd args"`` is one element, the command
    ``cmd args``); an element ``<addr>`` loses its angle brackets. Postfix
    does this with its RFC 822 tokenizer; comments in parentheses are not
    understood here.

    Pure: no I/O beyond reading the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from mailsys.config.lines import logical_lines
from mailsys.errors import ConfigError

__all__ = ["alias_records", "parse_aliases", "read_aliases", "split_alias_value", "split_name"]


def split_name(text: str) -> tuple[str, str] | None:
    """(name, value) of one logical line, or None when it has no ``name:``."""
    if text.startswith('"'):
        name, end = _quoted(text, 0)
        if end < 0:
            return None
        rest = text[end:].lstrip()
        if not rest.startswith(":"):
            return None
        return name, rest[1:].strip()
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        return None
    return name.strip(), value.strip()


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The unescaped contents of the quoted string at text[start], and the index
    after its closing quote (-1 when it is not closed)."""
    out = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    return "".join(out), -1


def alias_records(text: str, file: str, warn: Callable[[str], None]
                  ) -> Iterator[tuple[str, str, int]]:
    """(name, value, line number) of each entry of aliases(5) source text, in
    order; a line without ``name:`` is skipped with postalias's warning."""
    warnings: list[str] = []
    lines = logical_lines(text, file, warnings)
    for warning in warnings:
        warn(warning)
    for ll in lines:
        pair = split_name(ll.text)
        if pair is None:
            warn(f"{file}, line {ll.line}: need name:value pair")
            continue
        yield pair[0], pair[1], ll.line


def parse_aliases(text: str, file: str, table: str = "") -> tuple[dict[str, str], list[str]]:
    """The entries of an aliases(5) source text, and the warnings postalias
    gives (a duplicate is reported against the table being built, `table`)."""
    warnings: list[str] = []
    entries: dict[str, str] = {}
    for name, value, _ in alias_records(text, file, warnings.append):
        key = name.lower()
        if key in entries:
            warnings.append(f'{table or file}: duplicate entry: "{key}"')
            continue
        entries[key] = value
    return entries, warnings


def read_aliases(path: Path, table: str = "") -> tuple[dict[str, str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(f"open {path}: {e.strerror}") from None
    return parse_aliases(text, str(path), table)


def split_alias_value(value: str) -> list[str]:
    """The elements of an alias value or an :include: line, quotes removed."""
    elements: list[str] = []
    current: list[str] = []
    started = False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == '"':
            inner, end = _quoted(value, i)
            current.append(inner)
            started = True
            i = end if end >= 0 else len(value)
            continue
        if ch == "," or ch.isspace():
            if started:
                elements.append("".join(current))
                current, started = [], False
            i += 1
            continue
        current.append(ch)
        started = True
        i += 1
    if started:
        elements.append("".join(current))
    return [e[1:-1] if len(e) > 2 and e.startswith("<") and e.endswith(">") else e
            for e in elements if e]
