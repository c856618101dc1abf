"""table_build - what postmap and postalias store: keys, duplicates, terminating nulls.

SYNOPSIS
    opts = BuildOptions(fold=True, duplicates=WARN, nulls=False)
    raw = {}                                   # key bytes -> value bytes, as in the file
    add(raw, "Alice", "one", opts, table="/etc/x.lmdb", warn=print)
    add(raw, "alice", "two", opts, table="/etc/x.lmdb", warn=print)
        # warns '/etc/x.lmdb: duplicate entry: "alice"', keeps "one"
    delete(raw, "ALICE", opts)                 # True: it was there
    for key, value in entries(raw): ...        # nulls stripped, file order

DESCRIPTION
    A compiled table (FILE.lmdb) maps key bytes to value bytes. How a key
    gets there is Postfix's dict flags, as postmap(1) and postalias(1) set
    them from their options:

      fold        DICT_FLAG_FOLD_FIX: keys are stored and looked up in lower
                  case (-f turns it off);
      duplicates  what a key that is already there does: WARN keeps the first
                  with the warning 'TABLE: duplicate entry: "key"' (the
                  default), IGNORE keeps the first silently (-w), REPLACE
                  keeps the last silently (-r);
      nulls       -N: key and value are stored with a terminating null byte,
                  as some systems' Postfix builds do by default; -n (and
                  mailsys' default): without.

    Whatever was used when a table was built, a lookup, a delete or a
    listing finds a key stored either way (Postfix's readers try both), and
    a value's terminating null is never shown.

    Pure: bytes and dictionaries; the file is mailsys.config.tables' job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from mailsys.frozen import frozen

__all__ = ["BuildOptions", "WARN", "IGNORE", "REPLACE", "add", "delete", "get", "entries",
           "encode", "decode"]

WARN, IGNORE, REPLACE = "warn", "ignore", "replace"
NUL = b"\0"


@frozen
class BuildOptions:
    fold: bool = True
    duplicates: str = WARN
    nulls: bool = False


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _key(key: str, opts: BuildOptions) -> bytes:
    return encode(key.lower() if opts.fold else key)


def _stored(raw: dict[bytes, bytes], key: bytes) -> bytes | None:
    """The key as the table holds it: without or with its terminating null."""
    for candidate in (key, key + NUL):
        if candidate in raw:
            return candidate
    return None


def add(raw: dict[bytes, bytes], key: str, value: str, opts: BuildOptions, *,
        table: str, warn: Callable[[str], None]) -> None:
    """Store key -> value under opts (see the module description)."""
    k = _key(key, opts)
    existing = _stored(raw, k)
    if existing is not None:
        if opts.duplicates == REPLACE:
            raw[existing] = encode(value) + (NUL if existing.endswith(NUL) else b"")
        elif opts.duplicates == WARN:
            warn(f'{table}: duplicate entry: "{decode(k)}"')
        return
    tail = NUL if opts.nulls else b""
    raw[k + tail] = encode(value) + tail


def delete(raw: dict[bytes, bytes], key: str, opts: BuildOptions) -> bool:
    """Remove key; whether it was there."""
    existing = _stored(raw, _key(key, opts))
    if existing is None:
        return False
    del raw[existing]
    return True


def get(lookup: Callable[[bytes], bytes | None], key: bytes) -> str | None:
    """A value through `lookup` (raw key -> raw value), the key tried both ways."""
    for candidate in (key, key + NUL):
        value = lookup(candidate)
        if value is not None:
            return decode(value.removesuffix(NUL))
    return None


def entries(raw: dict[bytes, bytes] | Iterator[tuple[bytes, bytes]]
            ) -> Iterator[tuple[str, str]]:
    """(key, value) pairs in the order given, terminating nulls removed."""
    items = raw.items() if isinstance(raw, dict) else raw
    for key, value in items:
        yield decode(key.removesuffix(NUL)), decode(value.removesuffix(NUL))
