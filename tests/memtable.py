"""memtable - an in-memory lookup table for tests of code that consults tables.

Table(entries, **more) answers lookup(key) from a dict, as a mailsys table
does (the value, or None when the key is absent), and records every key it
was asked for in .keys, in order, so that a test can check what was
looked up as well as what came of it. With fold=True it folds keys to
lower case, as Postfix's hash, texthash and inline tables do.
"""

from __future__ import annotations


class Table:
    """A lookup table over a dict that records the keys asked for."""

    def __init__(self, entries: dict[str, str] | None = None, /, *, fold: bool = False,
                 **more: str) -> None:
        entries = {**(entries or {}), **more}
        self.fold = fold
        self.entries = {k.lower(): v for k, v in entries.items()} if fold else entries
        self.keys: list[str] = []

    def lookup(self, key: str) -> str | None:
        self.keys.append(key)
        return self.entries.get(key.lower() if self.fold else key)
